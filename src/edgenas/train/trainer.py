"""The one trainer that search, proxies and compression share.

SGD with momentum (optionally Nesterov), linear warm-up then cosine decay to zero (per step), weight decay on
conv/linear weights only (not on BN parameters or biases, the usual practice), label smoothing, gradient-norm
clipping, AMP (bf16 anywhere, fp16 with a grad scaler on CUDA), channels_last, seeds and a deterministic mode.

Exact resume: a checkpoint holds the model, optimiser, scheduler, grad scaler, RNG states, epoch, step and the
running sums of the epoch's training metrics. The sample order is a function of (seed, epoch) and augmentation a
function of (seed, epoch, sample index), so a run resumed from a checkpoint takes the same steps, on the same
batches, as a run that was never interrupted.

Distributed (``torchrun``): one process per device, global batch = ``batch_size`` split evenly over ranks,
BatchNorm statistics over the global batch (see :func:`convert_batchnorm_for_ddp`), so N processes compute what one
process computes; only rank 0 evaluates, logs and writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from edgenas._env import environment
from edgenas._io import write_text_atomic
from edgenas._random import seeded_torch
from edgenas.errors import CheckpointError, NonFiniteLossError, TrainConfigError
from edgenas.spaces import ArchSpec, spec_to_dict
from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.data import BatchTransform, ImageData, IndexedDataset, balanced_subset
from edgenas.train.distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    convert_batchnorm_for_ddp,
    init_distributed,
    revert_batchnorm,
)
from edgenas.train.sampler import ResumableDistributedSampler

CHECKPOINT_VERSION = 1
AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Training options (defaults: a CIFAR-style SGD recipe).

    Attributes:
        epochs: passes over the training set.
        batch_size: global batch size (split evenly over distributed ranks).
        lr: peak learning rate, reached after the warm-up.
        momentum: SGD momentum.
        nesterov: use Nesterov momentum.
        weight_decay: L2 penalty on conv and linear weights.
        warmup_epochs: linear warm-up length (epochs; may be fractional).
        label_smoothing: label smoothing of the cross-entropy.
        grad_clip: maximum gradient norm; 0 disables clipping.
        amp: ``none``, ``bf16`` or ``fp16`` (fp16 needs CUDA).
        channels_last: run the model and batches in channels-last memory format.
        seed: seed of initialisation-independent randomness (sample order, augmentation, dropout).
        deterministic: make torch use deterministic kernels (slower on GPUs).
        checkpoint_every: also checkpoint every N steps (0: only at the end of each epoch).
        log_every: write a ``step`` record to metrics.jsonl every N steps (0: never).
        eval_batch_size: batch size of evaluation.
        num_workers: data-loader worker processes.
        train_subset: train on a class-balanced subset of this many images (None: all).
        test_subset: evaluate on a class-balanced subset of this many images (None: all).
        augment: random crop and flip on the training batches.
        device: ``auto``, ``cpu`` or ``cuda``.
        distill_weight: weight of the knowledge-distillation term when a teacher is given (Hinton et al. 2015; thesis
            Fig 5.13): loss = (1 - w) * CE + w * tau^2 * KL(teacher || student at temperature tau).
        distill_temperature: the temperature tau of the distillation term.
    """

    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    amp: str = "none"
    channels_last: bool = True
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 0
    log_every: int = 50
    eval_batch_size: int = 256
    num_workers: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    device: str = "auto"
    distill_weight: float = 0.5
    distill_temperature: float = 4.0

    def validate(self) -> None:
        """Raise :class:`TrainConfigError` for options that cannot work."""
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise TrainConfigError("epochs, batch_size and eval_batch_size must be >= 1")
        numbers = (self.lr, self.momentum, self.weight_decay, self.warmup_epochs, self.label_smoothing, self.grad_clip)
        if not all(math.isfinite(v) for v in numbers):
            raise TrainConfigError(
                "lr, momentum, weight_decay, warmup_epochs, label_smoothing, grad_clip must be finite"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or not 0 <= self.label_smoothing < 1:
            raise TrainConfigError("lr must be > 0; weight_decay, grad_clip >= 0; label_smoothing in [0, 1)")
        if self.amp not in AMP_MODES:
            raise TrainConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not (0 <= self.distill_weight <= 1 and self.distill_temperature > 0):
            raise TrainConfigError("distill_weight must be in [0, 1] and distill_temperature > 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise TrainConfigError("--device cuda: no CUDA device is available")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a dict, ignoring unknown keys (older or newer run records)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _check_finite_weights(model: nn.Module, global_step: int, epoch: int) -> None:
    """Stop with :class:`NonFiniteLossError` when a weight became NaN or infinite.

    The per-step loss check sees a bad update only at the next step; this check at the end of every epoch catches
    the last step too (a one-step run with a NaN learning rate would otherwise save an all-NaN model).
    """
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteLossError(
                f"the weights ({name}) became NaN or infinite by step {global_step} (epoch {epoch + 1}); lower the "
                "learning rate, add --grad-clip, or check the data"
            )


class TrainCallback:
    """Hooks the trainer calls on rank 0 (the CLI draws its progress bar with them). All are optional."""

    def on_train_start(self, info: dict[str, Any]) -> None:
        """Called once with ``epochs``, ``steps_per_epoch``, ``start_epoch``, ``start_step``."""

    def on_step_end(self, info: dict[str, Any]) -> None:
        """Called after each optimiser step with ``epoch``, ``step`` (in epoch), ``global_step``, ``loss``, ``lr``."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """Called with the epoch record written to metrics.jsonl."""


@dataclass
class TrainResult:
    """What a finished run returns (the last epoch's record plus paths)."""

    run_dir: Path
    final: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


# ----- helpers ------------------------------------------------------------------------------------------------------
@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """Force deterministic torch kernels inside the block (when ``enabled``) and restore the previous settings."""
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warm-up, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: conv/linear weights with weight decay, everything else (BN, biases) without."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(targets.view(-1, 1))
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    # the Python and NumPy states stay in checkpoints for older readers; training does not draw from them
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()


def _truncate_metrics(path: Path, global_step: int) -> None:
    """Drop records written after the checkpoint a run resumes from (they will be written again)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("global_step", 0) <= global_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


# ----- evaluation ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    subset: Sequence[int] | None = None,
    amp: str = "none",
    num_workers: int = 0,
    input_size: int | None = None,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (%) of ``model`` on the test split of ``data`` (eval mode, restored after).

    Returns:
        ``{"loss", "top1", "top5", "n"}``.
    """
    device = torch.device(device)
    dataset = IndexedDataset(data.test, subset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    transform = BatchTransform(data.mean, data.std, augment=False, size=input_size, channels_last=channels_last)
    was_training = model.training
    model.eval()
    loss_sum, correct1, correct5, n = 0.0, 0, 0, 0
    try:
        for images, labels, indices in loader:
            x = transform(images.to(device, non_blocking=True), indices)
            y = labels.to(device)
            with _autocast(device, amp):
                logits = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            c1, c5 = topk_correct(logits, y)
            correct1, correct5, n = correct1 + c1, correct5 + c5, n + len(y)
    finally:
        model.train(was_training)
    return {
        "loss": loss_sum / max(n, 1),
        "top1": 100.0 * correct1 / max(n, 1),
        "top5": 100.0 * correct5 / max(n, 1),
        "n": n,
    }


def _autocast(device: torch.device, amp: str) -> Any:
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# ----- training -----------------------------------------------------------------------------------------------------
def train(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    spec: ArchSpec | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    dist_env: DistEnv | None = None,
    input_size: int | None = None,
    recipe: dict[str, Any] | None = None,
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` and write the run directory.

    The run directory receives ``config.json`` (resolved options, arch, dataset), ``env.json`` (git commit, library
    versions, device), ``metrics.jsonl`` (one ``epoch`` record per epoch and a ``step`` record every ``log_every``
    steps), ``checkpoints/last.pt`` and, at the end, ``model.pt`` (the arch spec and the standalone state dict).

    Args:
        model: the network (built from ``spec`` when given); moved to the device in place.
        data: the dataset (see :mod:`edgenas.train.data`).
        config: training options.
        run_dir: output folder.
        spec: the architecture, recorded so that ``edgenas eval`` can rebuild the network.
        resume: continue from ``run_dir/checkpoints/last.pt``.
        callbacks: progress hooks (rank 0 only).
        dist_env: the process group description (default: :func:`init_distributed`).
        input_size: resize batches to this side (px) when the images have another size (e.g. a space's resolution).
        recipe: a model recipe (:mod:`edgenas.models`) for a model that is not a spec of a space (a torchvision
            network, a grafted one); recorded like ``spec`` so that ``model.pt`` loads as a model reference.
        teacher: a network distilled into ``model`` (weights frozen, eval mode), weighted by
            ``config.distill_weight``.

    Raises:
        CheckpointError: resuming without a checkpoint, or starting over one without ``resume``.
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
        TrainConfigError: incompatible options.
    """
    config.validate()
    # torch's generators are seeded for the run and given back to the caller as they were; training draws nothing
    # from Python's or NumPy's global generators (data order and augmentation use seeded generators)
    with deterministic_kernels(config.deterministic), seeded_torch(config.seed):
        source = _Source(spec, recipe, teacher)
        return _train(model, data, config, Path(run_dir), source, resume, callbacks, dist_env, input_size)


@dataclass(frozen=True)
class _Source:
    """What the trained network is (a spec or a model recipe, recorded in the run) and its teacher, if any."""

    spec: ArchSpec | None = None
    recipe: dict[str, Any] | None = None
    teacher: nn.Module | None = None

    def record(self) -> dict[str, Any]:
        return {"arch": spec_to_dict(self.spec) if self.spec is not None else None, "recipe": self.recipe}


def _train(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    run: Path,
    source: _Source,
    resume: bool,
    callbacks: Sequence[TrainCallback],
    dist_env: DistEnv | None,
    input_size: int | None,
) -> TrainResult:
    loop = _TrainLoop(
        model, data, config, run, source, callbacks, dist_env or init_distributed(config.device), input_size
    )
    if resume:
        loop.load()
    loop.start(resume)
    loop.model.train()
    for epoch in range(loop.state["epoch"], config.epochs):
        loop.train_epoch(epoch)
        loop.end_epoch(epoch)
    return loop.finish()


class _TrainLoop:
    """One training run's state and its steps: the pieces of :func:`train`, each short enough to read at once.

    ``state`` holds the position (``epoch``, ``step`` in the epoch, ``global_step``) and this rank's running sums of
    the epoch (loss x n, correct, n); ``epoch_clock`` the wall time (s) of the epoch before a resume, the start of
    this process's part of it and the images seen in it.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ImageData,
        config: TrainConfig,
        run: Path,
        source: _Source,
        callbacks: Sequence[TrainCallback],
        env: DistEnv,
        input_size: int | None,
    ) -> None:
        self.data, self.config, self.run, self.callbacks, self.env = data, config, run, callbacks, env
        self.source, self.spec = source, source.spec
        self.input_size = input_size
        self.device = env.device
        self.ckpt_path, self.metrics_path = run / "checkpoints" / "last.pt", run / "metrics.jsonl"
        self._check_options()
        self.local_batch = config.batch_size // env.world_size
        self.model, self.net = self._place(model)
        self.teacher = self._place_teacher(source.teacher)
        self._build_data()
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model, config.weight_decay),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
        )
        total, warmup = config.epochs * self.steps_per_epoch, round(config.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, total, warmup))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.state: dict[str, Any] = {"epoch": 0, "step": 0, "global_step": 0, "sums": [0.0, 0.0, 0.0]}
        self.epoch_clock: dict[str, float] = {"before": 0.0, "start": time.perf_counter(), "images": 0}
        self.history: list[dict[str, Any]] = []

    def _check_options(self) -> None:
        config, env = self.config, self.env
        if config.amp == "fp16" and self.device.type != "cuda":
            raise TrainConfigError("amp fp16 needs a CUDA device; use --amp bf16 or none on the CPU")
        if config.batch_size % env.world_size:
            raise TrainConfigError(f"batch size {config.batch_size} is not divisible by the {env.world_size} processes")

    def _place(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """The model on the device (channels-last, DDP with global BatchNorm under torchrun) and its bare module."""
        model.to(self.device)
        if self.config.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.env.distributed:
            model = convert_batchnorm_for_ddp(model, self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        return model, _unwrap(model)

    def _place_teacher(self, teacher: nn.Module | None) -> nn.Module | None:
        if teacher is None:
            return None
        teacher = teacher.to(self.device).eval().requires_grad_(False)
        return teacher.to(memory_format=torch.channels_last) if self.config.channels_last else teacher

    def _build_data(self) -> None:
        config, data, env = self.config, self.data, self.env
        train_indices = (
            balanced_subset(data.train_labels, config.train_subset, seed=config.seed) if config.train_subset else None
        )
        self.test_indices = (
            balanced_subset(data.test_labels, config.test_subset, seed=config.seed) if config.test_subset else None
        )
        self.train_set = IndexedDataset(data.train, train_indices)
        self.sampler = ResumableDistributedSampler(
            self.train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=config.seed, drop_last=True
        )
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch == 0:
            raise TrainConfigError(f"batch size {config.batch_size} exceeds the {len(self.train_set)} training images")
        self.transform = BatchTransform(
            data.mean,
            data.std,
            augment=config.augment,
            crop_padding=data.crop_padding,
            flip=data.flip,
            size=self.input_size,
            channels_last=config.channels_last,
        )

    # -- run directory -----------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Continue from ``checkpoints/last.pt`` (raises CheckpointError when there is none or it does not fit)."""
        if not self.ckpt_path.is_file():
            raise CheckpointError(f"cannot resume: no checkpoint at {self.ckpt_path}")
        ckpt = load_checkpoint(self.ckpt_path)
        _check_resumable(ckpt, self.config, self.source, self.env)
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = {k: ckpt["state"][k] for k in ("epoch", "step", "global_step")}
        self.state["sums"] = list(ckpt["state"]["sums"][self.env.rank])
        _set_rng_state(ckpt["rng"][self.env.rank])
        self.history = list(ckpt.get("history", []))
        if self.state["step"]:  # resumed inside an epoch (older checkpoints lack these: the epoch counts from here)
            self.epoch_clock["before"] = float(ckpt["state"].get("epoch_elapsed_s", 0.0))
            self.epoch_clock["images"] = int(ckpt["state"].get("epoch_images", 0))

    def start(self, resume: bool) -> None:
        """Refuse to overwrite a run; write ``config.json``/``env.json`` (or cut the metrics back to the checkpoint)."""
        if not resume and self.ckpt_path.is_file():
            raise CheckpointError(
                f"{self.run} already holds a run (checkpoints/last.pt): pass --resume or choose another -o"
            )
        if not self.env.is_main:
            return
        self.run.mkdir(parents=True, exist_ok=True)
        if resume:
            _truncate_metrics(self.metrics_path, self.state["global_step"])
        else:
            self._write_records()
        info = {
            "epochs": self.config.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "start_epoch": self.state["epoch"],
            "start_step": self.state["step"],
        }
        for cb in self.callbacks:
            cb.on_train_start(info)

    def _write_records(self) -> None:
        record = {
            "train": asdict(self.config),
            **self.source.record(),
            "distilled": self.teacher is not None,
            "data": self.data.describe(),
            "world_size": self.env.world_size,
            "steps_per_epoch": self.steps_per_epoch,
        }
        write_text_atomic(self.run / "config.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        provenance = {"seed": self.config.seed, **environment(self.device)}
        write_text_atomic(self.run / "env.json", json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        self.metrics_path.unlink(missing_ok=True)

    def checkpoint(self) -> None:
        sums = all_gather_rows(self.state["sums"], self.env)
        rng = all_gather_rng(self.env)
        if self.env.is_main:
            state = self.state
            save_checkpoint(
                self.ckpt_path,
                {
                    "version": CHECKPOINT_VERSION,
                    **self.source.record(),
                    "config": asdict(self.config),
                    "world_size": self.env.world_size,
                    "model": self.net.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "state": {
                        "epoch": state["epoch"],
                        "step": state["step"],
                        "global_step": state["global_step"],
                        "sums": sums,
                        # the epoch's time and images so far: a resumed epoch reports the whole epoch's figures
                        "epoch_elapsed_s": time.perf_counter() - self.epoch_clock["start"] + self.epoch_clock["before"],
                        "epoch_images": self.epoch_clock["images"],
                    },
                    "rng": rng,
                    "history": self.history,
                },
            )
        barrier()

    # -- steps -------------------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> None:
        config = self.config
        self.sampler.set_epoch(epoch)
        self.sampler.set_start(self.state["step"] * self.local_batch)
        loader = DataLoader(
            self.train_set,
            batch_size=self.local_batch,
            sampler=self.sampler,
            drop_last=True,
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed * 7919 + epoch),
            persistent_workers=False,
        )
        self.epoch_clock["start"] = time.perf_counter()
        for images, labels, indices in loader:
            self._step(images, labels, indices, epoch)
            if (
                config.checkpoint_every
                and self.state["global_step"] % config.checkpoint_every == 0
                and self.state["step"] < self.steps_per_epoch
            ):
                self.checkpoint()

    def _step(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, epoch: int) -> None:
        config, device, state = self.config, self.device, self.state
        x = self.transform(images.to(device, non_blocking=True), indices, seed=config.seed, epoch=epoch)
        y = labels.to(device, non_blocking=True)
        with _autocast(device, config.amp):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            if self.teacher is not None:
                loss = self._distilled(loss, logits, x)
        reduced = all_reduce_sum(
            torch.stack([loss.detach().float() * len(y), torch.tensor(float(len(y)), device=device)])
        )
        global_loss = float(reduced[0] / reduced[1])
        if not math.isfinite(global_loss):
            raise NonFiniteLossError(
                f"training loss is {global_loss} at step {state['global_step'] + 1} (epoch {epoch + 1}, batch "
                f"{state['step'] + 1}); lower the learning rate, add --grad-clip, or check the data"
            )
        self._update(loss)
        correct = topk_correct(logits.detach(), y, ks=(1,))[0]
        s = state["sums"]
        s[0], s[1], s[2] = s[0] + float(loss.detach()) * len(y), s[1] + correct, s[2] + len(y)
        state["step"] += 1
        state["global_step"] += 1
        self.epoch_clock["images"] += len(y) * self.env.world_size
        if self.env.is_main:
            self._report_step(epoch, global_loss)

    def _distilled(self, loss: torch.Tensor, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(1 - w) CE + w tau^2 KL(teacher || student), both at temperature tau (Hinton et al. 2015)."""
        weight, tau = self.config.distill_weight, self.config.distill_temperature
        with torch.no_grad():
            target = F.log_softmax(self.teacher(x).float() / tau, dim=1)
        kl = F.kl_div(F.log_softmax(logits.float() / tau, dim=1), target, reduction="batchmean", log_target=True)
        return (1 - weight) * loss + weight * tau * tau * kl

    def _update(self, loss: torch.Tensor) -> None:
        """Backward, clip, optimiser and scheduler step (through the grad scaler for fp16)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def _report_step(self, epoch: int, loss: float) -> None:
        info = {
            "epoch": epoch + 1,
            "step": self.state["step"],
            "global_step": self.state["global_step"],
            "loss": loss,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if self.config.log_every and self.state["global_step"] % self.config.log_every == 0:
            _append_jsonl(self.metrics_path, {"kind": "step", **info})
        for cb in self.callbacks:
            cb.on_step_end(info)

    def end_epoch(self, epoch: int) -> None:
        """The epoch's record (training sums over ranks, test metrics on rank 0), then a checkpoint."""
        state = self.state
        _check_finite_weights(self.net, state["global_step"], epoch)
        epoch_time = time.perf_counter() - self.epoch_clock["start"] + self.epoch_clock["before"]
        images_seen = self.epoch_clock["images"]
        totals = all_reduce_sum(torch.tensor(state["sums"], dtype=torch.float64, device=self.device))
        record: dict[str, Any] = {
            "kind": "epoch",
            "epoch": epoch + 1,
            "global_step": state["global_step"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": float(totals[0] / totals[2]),
            "train_top1": float(100 * totals[1] / totals[2]),
            "epoch_time_s": round(epoch_time, 3),
            "images_per_s": round(images_seen / epoch_time, 2) if epoch_time > 0 else None,
        }
        if self.env.is_main:
            self._evaluate_into(record)
        self.history.append(record)
        state.update(epoch=epoch + 1, step=0, sums=[0.0, 0.0, 0.0])
        self.epoch_clock.update(before=0.0, images=0)
        self.checkpoint()

    def _evaluate_into(self, record: dict[str, Any]) -> None:
        config = self.config
        test = evaluate(
            self.net,
            self.data,
            batch_size=config.eval_batch_size,
            device=self.device,
            channels_last=config.channels_last,
            subset=self.test_indices,
            amp=config.amp,
            num_workers=config.num_workers,
            input_size=self.input_size,
        )
        record.update(test_loss=test["loss"], test_top1=test["top1"], test_top5=test["top5"], test_n=test["n"])
        _append_jsonl(self.metrics_path, record)
        for cb in self.callbacks:
            cb.on_epoch_end(record)

    def finish(self) -> TrainResult:
        """``model.pt`` (the spec and the standalone state dict) on rank 0; the result."""
        final = self.history[-1] if self.history else {}
        if self.env.is_main:
            standalone = revert_batchnorm(self.net) if self.env.distributed else self.net
            save_checkpoint(
                self.run / "model.pt",
                {
                    "version": CHECKPOINT_VERSION,
                    **self.source.record(),
                    "resolution": self.input_size,
                    "model": {k: v.detach().cpu() for k, v in standalone.state_dict().items()},
                    "metrics": final,
                },
            )
        barrier()
        return TrainResult(self.run, final, self.history)


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig, source: _Source, env: DistEnv) -> None:
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint version {ckpt.get('version')!r} is not {CHECKPOINT_VERSION}")
    spec = source.spec
    if spec is not None and ckpt.get("arch") and ckpt["arch"]["arch"] != str(spec):
        raise CheckpointError("the checkpoint was made for another architecture than the one given")
    if source.recipe is not None and ckpt.get("recipe") not in (None, source.recipe):
        raise CheckpointError("the checkpoint was made for another model than the one given")
    saved = ckpt.get("config", {})
    defaults = TrainConfig()  # a key an older run did not record had its default then
    for key in ("batch_size", "seed", "epochs", "lr", "train_subset", "warmup_epochs", "distill_weight"):
        if saved.get(key, getattr(defaults, key)) != getattr(config, key):
            raise CheckpointError(
                f"cannot resume with {key}={getattr(config, key)!r}: the run was started with {saved.get(key)!r}"
            )
    if ckpt.get("world_size") != env.world_size:
        raise CheckpointError(f"the run used {ckpt.get('world_size')} processes; resume it with the same number")


def all_gather_rows(row: list[float], env: DistEnv) -> list[list[float]]:
    """Every rank's ``row`` (a short list of floats), in rank order."""
    if not env.distributed:
        return [list(row)]
    import torch.distributed as dist

    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, list(row))
    return gathered


def all_gather_rng(env: DistEnv) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (each rank resumes its own stream)."""
    state = _rng_state()
    if not env.distributed:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in state.items()})
    return gathered

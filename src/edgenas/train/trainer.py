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

    Raises:
        CheckpointError: resuming without a checkpoint, or starting over one without ``resume``.
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
        TrainConfigError: incompatible options.
    """
    config.validate()
    # torch's generators are seeded for the run and given back to the caller as they were; training draws nothing
    # from Python's or NumPy's global generators (data order and augmentation use seeded generators)
    with deterministic_kernels(config.deterministic), seeded_torch(config.seed):
        return _train(model, data, config, Path(run_dir), spec, resume, callbacks, dist_env, input_size)


def _train(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    run: Path,
    spec: ArchSpec | None,
    resume: bool,
    callbacks: Sequence[TrainCallback],
    dist_env: DistEnv | None,
    input_size: int | None,
) -> TrainResult:
    env = dist_env or init_distributed(config.device)
    device = env.device
    if config.amp == "fp16" and device.type != "cuda":
        raise TrainConfigError("amp fp16 needs a CUDA device; use --amp bf16 or none on the CPU")
    if config.batch_size % env.world_size:
        raise TrainConfigError(f"batch size {config.batch_size} is not divisible by the {env.world_size} processes")
    local_batch = config.batch_size // env.world_size

    ckpt_path = run / "checkpoints" / "last.pt"
    metrics_path = run / "metrics.jsonl"
    if resume and not ckpt_path.is_file():
        raise CheckpointError(f"cannot resume: no checkpoint at {ckpt_path}")
    if not resume and ckpt_path.is_file():
        raise CheckpointError(f"{run} already holds a run (checkpoints/last.pt): pass --resume or choose another -o")

    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if env.distributed:
        model = convert_batchnorm_for_ddp(model, device)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = _unwrap(model)

    train_indices = (
        balanced_subset(data.train_labels, config.train_subset, seed=config.seed) if config.train_subset else None
    )
    test_indices = (
        balanced_subset(data.test_labels, config.test_subset, seed=config.seed) if config.test_subset else None
    )
    train_set = IndexedDataset(data.train, train_indices)
    sampler = ResumableDistributedSampler(
        train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    steps_per_epoch = len(sampler) // local_batch
    if steps_per_epoch == 0:
        raise TrainConfigError(f"batch size {config.batch_size} exceeds the {len(train_set)} training images")
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    transform = BatchTransform(
        data.mean,
        data.std,
        augment=config.augment,
        crop_padding=data.crop_padding,
        flip=data.flip,
        size=input_size,
        channels_last=config.channels_last,
    )

    optimizer = torch.optim.SGD(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    state = {"epoch": 0, "step": 0, "global_step": 0, "sums": [0.0, 0.0, 0.0]}  # loss*n, correct, n (this rank)
    # wall time (s) of the epoch before a resume, the start of this process's part of it, images seen in the epoch
    epoch_clock: dict[str, float] = {"before": 0.0, "start": time.perf_counter(), "images": 0}
    history: list[dict[str, Any]] = []

    if resume:
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, config, spec, env)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        state = {k: ckpt["state"][k] for k in ("epoch", "step", "global_step")}
        state["sums"] = list(ckpt["state"]["sums"][env.rank])
        _set_rng_state(ckpt["rng"][env.rank])
        history = list(ckpt.get("history", []))
        if state["step"]:  # resumed inside an epoch (older checkpoints lack these: the epoch counts from the resume)
            epoch_clock["before"] = float(ckpt["state"].get("epoch_elapsed_s", 0.0))
            epoch_clock["images"] = int(ckpt["state"].get("epoch_images", 0))
    if env.is_main:
        run.mkdir(parents=True, exist_ok=True)
        if resume:
            _truncate_metrics(metrics_path, state["global_step"])
        else:
            record = {
                "train": asdict(config),
                "arch": spec_to_dict(spec) if spec is not None else None,
                "data": data.describe(),
                "world_size": env.world_size,
                "steps_per_epoch": steps_per_epoch,
            }
            write_text_atomic(run / "config.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
            write_text_atomic(
                run / "env.json",
                json.dumps({"seed": config.seed, **environment(device)}, indent=2, sort_keys=True) + "\n",
            )
            metrics_path.unlink(missing_ok=True)
        for cb in callbacks:
            cb.on_train_start(
                {
                    "epochs": config.epochs,
                    "steps_per_epoch": steps_per_epoch,
                    "start_epoch": state["epoch"],
                    "start_step": state["step"],
                }
            )

    def checkpoint() -> None:
        sums = all_gather_rows(state["sums"], env)
        rng = all_gather_rng(env)
        if env.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "version": CHECKPOINT_VERSION,
                    "arch": spec_to_dict(spec) if spec is not None else None,
                    "config": asdict(config),
                    "world_size": env.world_size,
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "state": {
                        "epoch": state["epoch"],
                        "step": state["step"],
                        "global_step": state["global_step"],
                        "sums": sums,
                        # the epoch's time and images so far: a resumed epoch reports the whole epoch's figures
                        "epoch_elapsed_s": time.perf_counter() - epoch_clock["start"] + epoch_clock["before"],
                        "epoch_images": epoch_clock["images"],
                    },
                    "rng": rng,
                    "history": history,
                },
            )
        barrier()

    model.train()
    for epoch in range(state["epoch"], config.epochs):
        sampler.set_epoch(epoch)
        sampler.set_start(state["step"] * local_batch)
        loader = DataLoader(
            train_set,
            batch_size=local_batch,
            sampler=sampler,
            drop_last=True,
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed * 7919 + epoch),
            persistent_workers=False,
        )
        epoch_clock["start"] = time.perf_counter()
        for images, labels, indices in loader:
            x = transform(images.to(device, non_blocking=True), indices, seed=config.seed, epoch=epoch)
            y = labels.to(device, non_blocking=True)
            with _autocast(device, config.amp):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            reduced = all_reduce_sum(
                torch.stack([loss.detach().float() * len(y), torch.tensor(float(len(y)), device=device)])
            )
            global_loss = float(reduced[0] / reduced[1])
            if not math.isfinite(global_loss):
                raise NonFiniteLossError(
                    f"training loss is {global_loss} at step {state['global_step'] + 1} (epoch {epoch + 1}, batch "
                    f"{state['step'] + 1}); lower the learning rate, add --grad-clip, or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()

            correct = topk_correct(logits.detach(), y, ks=(1,))[0]
            s = state["sums"]
            s[0], s[1], s[2] = s[0] + float(loss.detach()) * len(y), s[1] + correct, s[2] + len(y)
            state["step"] += 1
            state["global_step"] += 1
            epoch_clock["images"] += len(y) * env.world_size
            lr = optimizer.param_groups[0]["lr"]
            if env.is_main:
                info = {
                    "epoch": epoch + 1,
                    "step": state["step"],
                    "global_step": state["global_step"],
                    "loss": global_loss,
                    "lr": lr,
                }
                if config.log_every and state["global_step"] % config.log_every == 0:
                    _append_jsonl(metrics_path, {"kind": "step", **info})
                for cb in callbacks:
                    cb.on_step_end(info)
            if (
                config.checkpoint_every
                and state["global_step"] % config.checkpoint_every == 0
                and state["step"] < steps_per_epoch
            ):
                checkpoint()

        _check_finite_weights(net, state["global_step"], epoch)
        epoch_time = time.perf_counter() - epoch_clock["start"] + epoch_clock["before"]
        images_seen = epoch_clock["images"]
        totals = all_reduce_sum(torch.tensor(state["sums"], dtype=torch.float64, device=device))
        record: dict[str, Any] = {
            "kind": "epoch",
            "epoch": epoch + 1,
            "global_step": state["global_step"],
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(totals[0] / totals[2]),
            "train_top1": float(100 * totals[1] / totals[2]),
            "epoch_time_s": round(epoch_time, 3),
            "images_per_s": round(images_seen / epoch_time, 2) if epoch_time > 0 else None,
        }
        if env.is_main:
            test = evaluate(
                net,
                data,
                batch_size=config.eval_batch_size,
                device=device,
                channels_last=config.channels_last,
                subset=test_indices,
                amp=config.amp,
                num_workers=config.num_workers,
                input_size=input_size,
            )
            record.update(test_loss=test["loss"], test_top1=test["top1"], test_top5=test["top5"], test_n=test["n"])
            _append_jsonl(metrics_path, record)
            for cb in callbacks:
                cb.on_epoch_end(record)
        history.append(record)
        state.update(epoch=epoch + 1, step=0, sums=[0.0, 0.0, 0.0])
        epoch_clock.update(before=0.0, images=0)
        checkpoint()

    final = history[-1] if history else {}
    if env.is_main:
        standalone = revert_batchnorm(net) if env.distributed else net
        save_checkpoint(
            run / "model.pt",
            {
                "version": CHECKPOINT_VERSION,
                "arch": spec_to_dict(spec) if spec is not None else None,
                "model": {k: v.detach().cpu() for k, v in standalone.state_dict().items()},
                "metrics": final,
            },
        )
    barrier()
    return TrainResult(run, final, history)


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig, spec: ArchSpec | None, env: DistEnv) -> None:
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint version {ckpt.get('version')!r} is not {CHECKPOINT_VERSION}")
    if spec is not None and ckpt.get("arch") and ckpt["arch"]["arch"] != str(spec):
        raise CheckpointError("the checkpoint was made for another architecture than the one given")
    saved = ckpt.get("config", {})
    for key in ("batch_size", "seed", "epochs", "lr", "train_subset", "warmup_epochs"):
        if saved.get(key) != getattr(config, key):
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

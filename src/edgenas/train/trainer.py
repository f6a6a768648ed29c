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

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from edgenas._env import environment
from edgenas._random import seeded_torch
from edgenas.errors import CheckpointError, NonFiniteLossError, TrainConfigError
from edgenas.rundir import resume_mismatch, write_provenance
from edgenas.spaces import ArchSpec, spec_to_dict
from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.config import TrainCallback, TrainConfig, TrainResult
from edgenas.train.data import BatchTransform, ImageData, IndexedDataset, balanced_subset
from edgenas.train.distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    convert_batchnorm_for_ddp,
    init_distributed,
    revert_batchnorm,
)
from edgenas.train.resume import (
    all_gather_rng,
    all_gather_rows,
    append_jsonl,
    set_rng_state,
    truncate_metrics,
)
from edgenas.train.sampler import ResumableDistributedSampler
from edgenas.train.steps import (
    autocast,
    check_finite_weights,
    deterministic_kernels,
    evaluate,
    lr_factor,
    parameter_groups,
    topk_correct,
)

CHECKPOINT_VERSION = 1
#: The options a resumed training must share with the run: they change its steps (logging and evaluation do not).
RESUME_KEYS = ("batch_size", "seed", "epochs", "lr", "train_subset", "warmup_epochs", "distill_weight")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


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
        set_rng_state(ckpt["rng"][self.env.rank])
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
            truncate_metrics(self.metrics_path, self.state["global_step"])
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
        write_provenance(self.run, record, {"seed": self.config.seed, **environment(self.device)})
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
        with autocast(device, config.amp):
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
            append_jsonl(self.metrics_path, {"kind": "step", **info})
        for cb in self.callbacks:
            cb.on_step_end(info)

    def end_epoch(self, epoch: int) -> None:
        """The epoch's record (training sums over ranks, test metrics on rank 0), then a checkpoint."""
        state = self.state
        check_finite_weights(self.net, state["global_step"], epoch)
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
        append_jsonl(self.metrics_path, record)
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
    # a key an older run did not record had its default then
    mismatch = resume_mismatch(ckpt.get("config", {}), config, RESUME_KEYS)
    if mismatch is not None:
        raise CheckpointError(f"cannot resume with {mismatch}: start a new run for other settings")
    if ckpt.get("world_size") != env.world_size:
        raise CheckpointError(f"the run used {ckpt.get('world_size')} processes; resume it with the same number")

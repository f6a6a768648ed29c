"""The trainer's options, its callback hooks and what a finished run returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from edgenas.errors import TrainConfigError

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

"""The trainer's step-level pieces: the learning-rate schedule, parameter groups, autocast, deterministic kernels,
the weights' finiteness check, top-k counting and evaluation."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from edgenas.errors import NonFiniteLossError
from edgenas.train.data import BatchTransform, ImageData, IndexedDataset


def check_finite_weights(model: nn.Module, global_step: int, epoch: int) -> None:
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
            with autocast(device, amp):
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


def autocast(device: torch.device, amp: str) -> Any:
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)

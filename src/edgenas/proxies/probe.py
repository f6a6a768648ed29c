"""One short training of a network on fixed-order batches, recording what every accuracy proxy reads.

BTE (thesis Definition 4.1) needs the loss of every batch in every epoch with the same batches in the same order and
no random augmentation; TSE (Ru et al. 2021) sums those losses; the Jacobian covariance score (Mellor et al. 2021)
is read from the weights at initialisation (and, for the rank study's "does it improve with budget" question, after
every epoch). A :class:`Trace` holds all of it, so one training serves every proxy at every budget ``1..E``.

The optimiser is NAS-Bench-201's (SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.1): its cosine schedule over
200 epochs is still at ~0.1 in the first few, so a constant 0.1 reproduces the early training the table's
accuracies come from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgenas.errors import NonFiniteLossError, ProxyError
from edgenas.train.steps import parameter_groups

#: Keeps the log of a zero eigenvalue finite in the Jacobian covariance score (the value of Mellor et al.'s code).
JACOBIAN_EPS = 1e-5


@dataclass(frozen=True)
class ProbeSettings:
    """How a network is probed.

    Attributes:
        epochs: E, passes over the fixed batches (BTE needs E >= 2).
        lr: constant SGD learning rate.
        momentum: SGD (Nesterov) momentum.
        weight_decay: L2 penalty on conv and linear weights.
        jacobian: also compute the Jacobian covariance score (at initialisation and after every epoch).
        jacobian_images: images of the batch the Jacobian score is computed on.
    """

    epochs: int = 3
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    jacobian: bool = True
    jacobian_images: int = 64

    def check(self) -> None:
        """Raise :class:`ProxyError` for settings that cannot work."""
        if self.epochs < 0 or self.jacobian_images < 2:
            raise ProxyError("epochs must be >= 0 and jacobian_images >= 2")
        if not (math.isfinite(self.lr) and self.lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0):
            raise ProxyError("lr must be > 0, momentum in [0, 1) and weight_decay >= 0")


@dataclass
class Trace:
    """What one probe recorded.

    Attributes:
        losses: ``E x N`` training loss of batch ``n`` in epoch ``e`` (computed in the forward pass of its step).
        jacobian: Jacobian covariance score at initialisation (index 0) and after each epoch (index e); empty when
            not computed.
        seconds: wall time of the probe (s).
    """

    losses: np.ndarray
    jacobian: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """E: the epochs recorded."""
        return int(self.losses.shape[0])

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (losses as nested lists)."""
        return {"losses": self.losses.tolist(), "jacobian": list(self.jacobian), "seconds": self.seconds}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Trace:
        """The inverse of :meth:`as_dict`."""
        losses = np.asarray(values["losses"], dtype=np.float64)
        losses = losses if losses.ndim == 2 else losses.reshape(0, 0)
        return cls(losses, [float(v) for v in values.get("jacobian", [])], float(values.get("seconds", 0.0)))


Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def jacobian_score(model: nn.Module, images: torch.Tensor) -> float:
    """Mellor et al. (2021)'s Jacobian covariance score of ``model`` on ``images``; higher is better.

    The Jacobian of the summed logits with respect to each input, one row per image, is turned into a correlation
    matrix whose eigenvalues ``v`` give ``-sum(log(v + eps) + 1 / (v + eps))``: near-uncorrelated Jacobians (the
    network tells the images apart at initialisation) score high. BatchNorm uses the batch's statistics (train
    mode), as in their code; the model's mode and gradients are restored afterwards.
    """
    was_training = model.training
    model.train()
    x = images.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            # a cell of only "none" edges ignores its input: its zero Jacobian gets the lowest score
            (grad,) = torch.autograd.grad(model(x).sum(), x, allow_unused=True)
            grad = torch.zeros_like(x) if grad is None else grad
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    rows = grad.reshape(len(grad), -1).double()
    correlation = torch.corrcoef(rows).nan_to_num(nan=0.0)
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp_min(0.0)
    return float(-(torch.log(eigenvalues + JACOBIAN_EPS) + 1.0 / (eigenvalues + JACOBIAN_EPS)).sum())


def probe(
    model: nn.Module,
    batches: Batches,
    settings: ProbeSettings,
    *,
    on_epoch: Callable[[int], None] | None = None,
) -> Trace:
    """Train ``model`` for ``settings.epochs`` passes over ``batches`` (iterated afresh each epoch, so it must yield
    the same batches in the same order: :class:`edgenas.train.data.FixedOrderBatches`) and record the trace.

    Raises:
        ProxyError: bad settings, or no batches.
        NonFiniteLossError: a loss became NaN or infinite.
    """
    settings.check()
    start = time.perf_counter()
    jacobian_batch = _jacobian_batch(batches, settings) if settings.jacobian else None
    jacobian = [jacobian_score(model, jacobian_batch)] if jacobian_batch is not None else []
    optimizer = torch.optim.SGD(
        parameter_groups(model, settings.weight_decay), lr=settings.lr, momentum=settings.momentum, nesterov=True
    )
    rows = []
    model.train()
    for epoch in range(settings.epochs):
        rows.append(_epoch(model, batches, optimizer, epoch))
        if jacobian_batch is not None:
            jacobian.append(jacobian_score(model, jacobian_batch))
        if on_epoch is not None:
            on_epoch(epoch + 1)
    if rows and len({len(r) for r in rows}) != 1:
        raise ProxyError("the batches changed between epochs: pass a fixed-order batch source")
    losses = np.asarray(rows, dtype=np.float64).reshape(settings.epochs, -1) if rows else np.zeros((0, 0))
    return Trace(losses, jacobian, time.perf_counter() - start)


def _jacobian_batch(batches: Batches, settings: ProbeSettings) -> torch.Tensor:
    images = []
    for x, _ in batches:
        images.append(x)
        if sum(len(i) for i in images) >= settings.jacobian_images:
            break
    if not images:
        raise ProxyError("no batches to probe with")
    return torch.cat(images)[: settings.jacobian_images]


def _epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer, epoch: int) -> list[float]:
    losses = []
    for images, labels in batches:
        loss = F.cross_entropy(model(images), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"the probe's loss became {loss.item()} in epoch {epoch + 1}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    if not losses:
        raise ProxyError("no batches to probe with")
    return losses

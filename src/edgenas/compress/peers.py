"""Domino's peers at a measured latency (thesis Observation 5, Fig 5.4/5.11, Table 5.2): uniform width multipliers
of MobileNetV2 and structural pruning with torch-pruning (``MetaPruner`` + ``MagnitudeImportance``, the classifier
kept whole), each brought to a latency *measured* on a runtime rather than to a FLOPs ratio.

``fit_to_latency`` measures a ladder of candidates round-robin (one drift hits them alike) and returns the largest
one that meets the target, so every method gets the same budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgenas.errors import DominoError

#: Width multipliers of MobileNetV2 tried (torchvision rounds every width to a multiple of 8).
WIDTHS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0)
#: Width multipliers of the run's same-budget baseline (torchvision's MobileNetV2, what a user ships without a
#: search): its stem and strides are ImageNet's, so at CIFAR's 32 px its feature maps end at 1x1 and only widths
#: above 1 reach the latency of a network searched for that resolution.
BASELINE_WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
#: Channel pruning ratios tried (share of each prunable layer's channels removed).
PRUNE_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Fitted:
    """A candidate brought to a latency: its label, model, measured latency (ms) and size (parameters)."""

    label: str
    model: nn.Module
    measured_ms: float
    params: int


def width_scaled(width: float, num_classes: int, resolution: int) -> Any:
    """MobileNetV2 x ``width`` as a :class:`~edgenas.models.LoadedModel` (fresh weights)."""
    from edgenas.models import load_model

    return load_model(f"torchvision:mobilenet_v2?width_mult={width:g}", num_classes=num_classes, resolution=resolution)


def widest_meeting(widths: Sequence[float], measured_ms: Sequence[float], limit_ms: float) -> int | None:
    """Index of the largest width whose measured latency (ms, measured in one session with the reference that set
    ``limit_ms``) is at most ``limit_ms``; None when none is."""
    meeting = [i for i, ms in enumerate(measured_ms) if ms <= limit_ms]
    return max(meeting, key=lambda i: widths[i]) if meeting else None


#: Pruned channel counts are rounded to multiples of this, so that a pruned network does not fall off ONNX Runtime's
#: vectorised CPU kernels with odd channel counts (an unrounded first benchmark pass was slower than unpruned; its
#: figures were not kept).
PRUNE_ROUND_TO = 8


def pruned(model: nn.Module, ratio: float, resolution: int, round_to: int | None = PRUNE_ROUND_TO) -> nn.Module:
    """A structurally pruned copy of ``model``: ``ratio`` of the channels of every prunable layer removed by L2
    magnitude (torch-pruning's ``MetaPruner``, channel counts rounded to ``round_to``), the classifier (the last
    Linear) left whole.

    Raises:
        DominoError: torch-pruning is not installed, or the ratio is outside (0, 1).
    """
    import copy

    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise DominoError("structural pruning needs torch-pruning: pip install torch-pruning") from exc
    if not 0 < ratio < 1:
        raise DominoError(f"pruning ratio must be in (0, 1), got {ratio}")
    model = copy.deepcopy(model).eval()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    ignored = linears[-1:]
    example = torch.randn(1, 3, resolution, resolution)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        round_to=round_to,
    )
    pruner.step()
    return model.train()


def fit_to_latency(
    candidates: Sequence[tuple[str, nn.Module]],
    measure: Callable[[list[nn.Module]], list[float]],
    target_ms: float,
) -> tuple[Fitted, list[Fitted]]:
    """Measure every candidate (``measure``: models -> ms, round-robin) and return the one with the most parameters
    among those meeting ``target_ms``, and all of them.

    Raises:
        DominoError: no candidate meets the target.
    """
    ms = measure([m for _, m in candidates])
    all_fitted = [
        Fitted(label, model, t, sum(p.numel() for p in model.parameters()))
        for (label, model), t in zip(candidates, ms, strict=True)
    ]
    meeting = [f for f in all_fitted if f.measured_ms <= target_ms]
    if not meeting:
        fastest = min(all_fitted, key=lambda f: f.measured_ms)
        raise DominoError(
            f"no candidate meets {target_ms:.3f} ms (fastest: {fastest.label} at {fastest.measured_ms:.3f} ms)"
        )
    return max(meeting, key=lambda f: f.params), all_fitted

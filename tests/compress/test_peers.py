"""Domino's peers: torch-pruning's structural pruning (channel counts rounded, classifier whole) and the choice of
the largest candidate that meets a measured latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgenas.compress.peers import fit_to_latency, pruned, width_scaled
from edgenas.errors import DominoError


def test_pruning_removes_channels_in_multiples_of_eight_and_keeps_the_classifier() -> None:
    model = width_scaled(0.5, 10, 32).model
    small = pruned(model, 0.5, 32)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(small) < 0.5 * params(model)
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert [m for m in small.modules() if isinstance(m, nn.Linear)][-1].out_features == 10
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(DominoError, match="ratio"):
        pruned(model, 1.0, 32)


def test_fit_to_latency_takes_the_largest_candidate_that_meets_the_target() -> None:
    candidates = [(f"width {w}", width_scaled(w, 10, 32).model) for w in (0.25, 0.5, 1.0)]

    def by_size(models):  # a fake device: 1 ms per million parameters
        return [sum(p.numel() for p in m.parameters()) / 1e6 for m in models]

    sizes = by_size([m for _, m in candidates])
    chosen, every = fit_to_latency(candidates, by_size, (sizes[1] + sizes[2]) / 2)
    assert chosen.label == "width 0.5" and len(every) == 3 and chosen.measured_ms == sizes[1]
    with pytest.raises(DominoError, match="no candidate meets"):
        fit_to_latency(candidates, by_size, sizes[0] / 2)

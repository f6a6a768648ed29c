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


def test_the_baseline_width_is_the_widest_mobilenet_meeting_a_latency_on_a_cost_model_device() -> None:
    """On a device whose latency is a function of the mult-adds, the exact answer is known: the widest multiplier
    of the ladder whose mult-adds fit the budget."""
    from _pipeline import MS_PER_MMAC, OVERHEAD_MS, CostRuntime

    from edgenas.compress.peers import BASELINE_WIDTHS, widest_meeting
    from edgenas.hardware.device import LocalDevice
    from edgenas.hardware.runtimes import RuntimeOptions
    from edgenas.nn.costs import measure_costs

    options = RuntimeOptions(batch=1, resolution=32, threads=1)
    device = LocalDevice(CostRuntime(options), options)
    ladder = [width_scaled(w, 10, 32).model for w in BASELINE_WIDTHS]
    measured = [m.median_ms for m in device.measure(ladder)]
    exact = [OVERHEAD_MS + MS_PER_MMAC * measure_costs(m, (1, 3, 32, 32)).mult_adds / 1e6 for m in ladder]
    assert measured == pytest.approx(exact)
    limit = (exact[5] + exact[6]) / 2  # between x1.25 and x1.5
    assert BASELINE_WIDTHS[widest_meeting(BASELINE_WIDTHS, measured, limit)] == 1.25
    assert widest_meeting(BASELINE_WIDTHS, measured, exact[-1]) == len(BASELINE_WIDTHS) - 1
    assert widest_meeting(BASELINE_WIDTHS, measured, 0.5 * exact[0]) is None

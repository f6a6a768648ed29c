"""Closing the loop on measurements (``edgenas.search.closed_loop``) on a simulated device with a per-arch error the
predictor cannot know and a drift, from a 200-arch profile."""

from __future__ import annotations

import pytest
import torch
from _device import SimulatedDevice, alpha_preferring
from _toy import toy_space

from edgenas.errors import SearchError
from edgenas.search.budget import feasible_range
from edgenas.search.closed_loop import LOOP_BUDGET, STALE_AFTER, LocalCorrection, close_loop, log_preference
from edgenas.search.coverage import archs_near

TOLERANCE = 0.02
DRIFT = 0.002  # +0.2% per measurement after a 3% offset since the profile
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # targets across the profiled range, both ends included


def _searched(predictor, space, value, seed):
    """What a search hands the loop: an arch predicted on T (within 1%) and logits that prefer it."""
    arch = archs_near(predictor, space, value, 1, band=0.01, seed=seed)[0]
    return arch, alpha_preferring(space, arch, seed=seed)


def _latest(result) -> dict:
    """The latest measurement of each arch the loop measured (an arch may be measured again)."""
    return {m["arch"]: m for m in result.measurements}


@pytest.mark.parametrize("metric", ["latency_ms", "energy_mJ"])
def test_the_loop_lands_within_the_tolerance_on_a_device_the_predictor_misprices(metric) -> None:
    space = toy_space()
    landed, first_missed, spent = 0, 0, []
    for seed in (0, 1):
        device = SimulatedDevice(space, seed=seed, drift=DRIFT, metric=metric)
        predictor = device.fitted_lut(200, seed=seed)
        low, high = predictor.meta.value_range
        for fraction in FRACTIONS:
            value = low + fraction * (high - low)
            arch, alpha = _searched(predictor, space, value, seed)
            result = close_loop(arch, alpha, predictor, value, device, tolerance=TOLERANCE)
            spent.append(len(result.measurements))
            first_missed += abs(result.measurements[0]["error"]) > TOLERANCE
            if result.within_tolerance:
                landed += 1
                chosen = _latest(result)[str(result.chosen)]
                assert abs(chosen["error"]) <= TOLERANCE and "met" in result.verdict
                # measured again now: off by at most the drift since its last measurement (at most STALE_AFTER ago)
                assert abs(device.now(result.chosen) / value - 1) <= TOLERANCE + STALE_AFTER * DRIFT + 1e-9
    assert max(spent) <= LOOP_BUDGET
    assert first_missed >= 3, "the predictor should miss the searched arch often, or the test proves nothing"
    assert landed >= 9, f"{landed} of 10 landed within ±2%"


def test_the_loop_prefers_what_the_search_prefers() -> None:
    """Among the archs measured within the tolerance it keeps the best-scoring one; a searched arch already within
    the tolerance is kept after one measurement (nothing scores higher)."""
    space = toy_space()
    device = SimulatedDevice(space, seed=3, drift=0.0)
    predictor = device.fitted_lut(200, seed=3)
    value = device.now(space.sample(seed=9, n=1)[0])
    arch = space.sample(seed=9, n=1)[0]
    result = close_loop(arch, alpha_preferring(space, arch), predictor, value, device, tolerance=TOLERANCE)
    assert result.within_tolerance and result.chosen == arch and len(result.measurements) == 1
    reach = feasible_range(predictor, space)
    value = reach.low + 0.4 * (reach.high - reach.low)
    arch, alpha = _searched(predictor, space, value, 4)
    result = close_loop(arch, alpha, predictor, value, device, tolerance=TOLERANCE)
    within = [m for m in _latest(result).values() if abs(m["error"]) <= TOLERANCE]
    assert within and result.chosen == space.parse(max(within, key=lambda m: m["score"])["arch"])
    preference = log_preference(alpha, space)
    scores = [float((space.one_hot(space.parse(m["arch"])) * preference).sum()) for m in result.measurements]
    assert scores == pytest.approx([m["score"] for m in result.measurements], rel=1e-5)


def test_an_unreachable_target_gets_a_clear_verdict_within_the_budget() -> None:
    space = toy_space()
    device = SimulatedDevice(space, seed=2, drift=0.0)
    predictor = device.fitted_lut(200, seed=2)
    reach = feasible_range(predictor, space)
    arch = reach.low_spec
    seen: list[str] = []
    result = close_loop(
        arch,
        alpha_preferring(space, arch),
        predictor,
        0.5 * predictor.meta.value_range[0],  # half the fastest profiled arch
        device,
        budget=6,
        on_measure=lambda spec, value: seen.append(str(spec)),
    )
    assert not result.within_tolerance and "NOT met" in result.verdict
    assert len(result.measurements) <= 6 and seen == [m["arch"] for m in result.measurements]
    assert result.chosen == space.parse(min(result.measurements, key=lambda m: m["measured"])["arch"])
    with pytest.raises(SearchError, match="budget"):
        close_loop(arch, alpha_preferring(space, arch), predictor, 2.0, device, budget=0)


def test_the_local_correction_follows_measurements_near_them_and_fades_away() -> None:
    space = toy_space()
    device = SimulatedDevice(space, seed=1, drift=0.0)
    predictor = device.fitted_lut(200, seed=1)
    correction = LocalCorrection(predictor, space)
    arch = space.sample(seed=5, n=1)[0]
    assert torch.allclose(correction(space.one_hot(arch)[None]), predictor(space.one_hot(arch)[None]))
    correction.add(arch, 1.2 * float(predictor.predict(arch)))
    assert float(correction(space.one_hot(arch)[None])[0]) == pytest.approx(1.2 * float(predictor.predict(arch)))
    far = space.sample(seed=6, n=1)[0]
    hots = space.one_hot([arch, far])
    residual = correction.residual(hots)
    assert residual[0] > residual[1] * 0.999  # one point: the same everywhere, a kernel mean of one value
    correction.add(far, float(predictor.predict(far)))  # a second point without error pulls the far arch to 0
    residual = correction.residual(hots)
    assert residual[0] > 0.1 and abs(float(residual[1])) < 0.05

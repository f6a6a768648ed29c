"""Issue 31 §3: Domino's latency in the unit of one session — the calibration rescales the mask predictor to masks
timed beside the ungrafted network (a fake device with a known factor), reads T at the level of a device's anchor,
and the closed loop lands a mask on a device whose every mask carries its own error, on a level that drifts."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgenas.compress.domino import latency_masks, predicted_latency
from edgenas.compress.domino_session import calibrate_masks, calibrated, deployed_ratio, spread_masks
from edgenas.hardware import MeasurementStore
from edgenas.hardware.device import SimulatedDevice, latency_fn
from edgenas.hardware.reference import Anchor
from edgenas.predictors import fit_on_store
from edgenas.search.closed_loop import Band
from edgenas.search.landing import LandingPolicy, land_found
from edgenas.spaces import get_space, spec_to_dict
from edgenas.spaces.domino import KEEP, mask_space

#: The fake device runs this much slower than the store the predictor was fitted on.
FACTOR = 1.7
#: Each mask's own error on the fake device (a deterministic share in [-MASK_ERROR, MASK_ERROR]).
MASK_ERROR = 0.08


@pytest.fixture(scope="module")
def space():
    return mask_space({"arch": spec_to_dict(get_space("mbv2-cifar", width=0.25, resolution=16).sample(0)[0])})


def true_ms(spec):
    """What the store was measured at: 0.2 ms a kept block, 0.08 a grafted one, earlier blocks dearer."""
    return 0.5 + sum((0.2 if c == KEEP else 0.08) * (1 + 0.05 * i) for i, c in enumerate(spec.choices))


def mask_error(spec) -> float:
    digest = hashlib.sha256(str(spec.choices).encode()).digest()
    return MASK_ERROR * (digest[0] / 127.5 - 1)


@pytest.fixture(scope="module")
def latency(space, tmp_path_factory):
    """An MLP fitted on the product's 120 latency masks (the two ends and uniform draws) profiled on the true
    function (no drift: its nominal level is exact)."""
    path = tmp_path_factory.mktemp("store") / "store.db"
    with MeasurementStore(path) as db:
        name = SimulatedDevice(true_ms, name="sim").profile(latency_masks(space, 120, seed=3), db).device
    return predicted_latency(fit_on_store(space, path, name, seed=0), space)


def test_calibration_rescales_the_predictor_to_a_device_with_a_known_factor(space, latency):
    device = SimulatedDevice(lambda s: FACTOR * true_ms(s))
    session = calibrate_masks(space, latency, device, spread=4, loads=2)
    masks = [space.parse(m["mask"]) for m in session.masks]
    assert masks[:2] == [space.keep_all(), space.graft_all()] and len(set(masks)) == 6
    spread = latency(masks[2:])
    assert spread == sorted(spread)  # quantiles of the predicted range, in order
    assert session.level_ms == pytest.approx(FACTOR * true_ms(space.keep_all()), rel=1e-9)
    assert session.factor == pytest.approx(FACTOR, rel=0.03)  # the predictor's own error is ~1%
    for row, mask in zip(session.masks, masks, strict=True):
        assert row["measured_ms"] == pytest.approx(FACTOR * true_ms(mask), rel=1e-9)
        # the MLP is least sure at the two ends (all kept, all grafted: rare among the sampled masks)
        assert row["calibrated_ms"] == pytest.approx(row["measured_ms"], rel=0.08)
    scaled = calibrated(latency, space, session.factor)
    assert scaled(masks)[3] == pytest.approx(latency(masks)[3] * session.factor, rel=1e-6)


def test_a_device_with_an_anchor_reads_t_at_its_nominal_level(space, latency):
    """``edgenas run``'s device times the run's reference at the profile's nominal level: T is read there."""
    reference = space.sample(seed=9)[0]
    nominal = 0.8 * FACTOR * true_ms(reference)  # the device runs 1/0.8 slower now than at its nominal level
    device = SimulatedDevice(lambda s: FACTOR * true_ms(s), anchor=Anchor(reference, nominal))
    session = calibrate_masks(space, latency, device, spread=2, loads=1)
    assert session.session_ms == pytest.approx(FACTOR * true_ms(space.keep_all()), rel=1e-9)
    assert session.level_ms == pytest.approx(0.8 * session.session_ms, rel=1e-9)
    assert session.target_ms(0.0, 0.75) == pytest.approx(0.75 * session.level_ms)
    assert session.target_ms(1.23, 0.0) == 1.23


def test_the_loop_lands_beside_the_ungrafted_network_where_the_calibrated_predictor_misses(space, latency):
    rng = np.random.default_rng(0)
    truth = lambda s: FACTOR * true_ms(s) * (1 + mask_error(s))  # noqa: E731
    drifting = SimulatedDevice(truth, level=lambda: float(rng.uniform(0.7, 1.3)))  # +-30% from session to session
    session = calibrate_masks(space, latency, drifting, spread=4, loads=3)
    scaled = calibrated(latency, space, session.factor)
    ratio = 0.7
    target = session.target_ms(0.0, ratio)
    ungrafted = truth(space.keep_all())

    def true_ratio(spec):
        return truth(spec) / ungrafted

    # the searched mask: predicted just under T, one whose own error puts it over T + 2% when measured
    pool = [s for s in space.sample(seed=5, n=400) if abs(scaled([s])[0] / target - 1) < 0.01]
    searched = next(s for s in pool if true_ratio(s) > ratio * 1.02)
    band = Band(target, 0.02, "le")
    device = drifting.with_anchor(session.anchor(space))
    loop = land_found(searched, scaled.predictor, band, latency_fn(device, 3), LandingPolicy(budget=12))
    chosen = loop.chosen
    assert loop.within_tolerance, loop.verdict
    assert ratio * 0.95 <= true_ratio(chosen) <= ratio * 1.02  # lands on T, not far under it
    assert sum(a != b for a, b in zip(chosen.choices, searched.choices, strict=True)) <= 3


def test_the_shipped_network_is_judged_by_its_ratio_to_the_ungrafted_one(space):
    rng = np.random.default_rng(1)
    device = SimulatedDevice(lambda s: FACTOR * true_ms(s), level=lambda: float(rng.uniform(0.5, 2.0)))
    mask = space.graft_all()
    measured = deployed_ratio(device, space.keep_all(), mask, level_ms=3.0, loads=3)
    expected = true_ms(mask) / true_ms(space.keep_all())
    assert measured["ratio"] == pytest.approx(expected, rel=1e-9)
    assert measured["speedup"] == pytest.approx(1 / expected, rel=1e-9)
    assert measured["measured_ms"] == pytest.approx(3.0 * expected, rel=1e-9)


def test_spread_masks_without_spread_are_the_two_ends(space, latency):
    assert spread_masks(space, latency, 0) == [space.keep_all(), space.graft_all()]

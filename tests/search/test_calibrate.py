"""On-device calibration: scaling a predictor, archs near a target, and the closed loop on a simulated device."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from _toy import toy_predictor, toy_space

from edgenas.errors import SearchError
from edgenas.search.budget import feasible_range
from edgenas.search.calibrate import archs_near, calibrate, correct, scale_predictor
from edgenas.search.lightnas import SearchConfig, Target, search
from edgenas.spaces import load_specs
from edgenas.train import load_dataset

CONFIG = SearchConfig(
    epochs=3, warmup_epochs=1, batch_size=16, train_subset=96, val_fraction=0.5, w_lr=0.05, accuracy=False
)


def drifted_device(space, factor: float, seed: int = 5):
    """A simulated device: the toy predictor x ``factor`` plus a per-op error of up to +-6% that the predictor does
    not know (what a real device does to an additive table)."""
    truth = toy_predictor(space)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        truth.net.table.mul_(factor * (1 + 0.12 * (torch.rand(truth.net.table.shape, generator=g) - 0.5)))
        truth.net.constant.mul_(factor)
    calls: list[str] = []

    def measure(arch) -> float:
        calls.append(str(arch))
        return float(truth.predict(arch))

    return measure, calls


@pytest.mark.parametrize("transform", ["none", "log"])
def test_scaled_predictor_multiplies_every_prediction(transform, tmp_path) -> None:
    space = toy_space()
    base = toy_predictor(space)
    if transform == "log":  # the same table read as log-latency: exp(mean + std * net)
        base.meta.transform, base.meta.mean, base.meta.std = "log", -2.0, 0.3
    specs = space.sample(3, n=16)
    scaled = scale_predictor(base, 1.07)
    assert np.allclose(scaled.predict(specs), 1.07 * base.predict(specs), rtol=1e-6)
    hot = space.one_hot(specs).requires_grad_(True)
    scaled(hot).sum().backward()  # still differentiable for the search
    assert hot.grad is not None and hot.grad.abs().sum() > 0
    reloaded = type(scaled).load(scaled.save(tmp_path / "s.pt"))
    assert np.allclose(reloaded.predict(specs), scaled.predict(specs), rtol=1e-6)
    with pytest.raises(SearchError, match="positive"):
        scale_predictor(base, 0.0)


def test_archs_near_a_target_are_distinct_and_inside_the_band() -> None:
    space, predictor = toy_space(), toy_predictor()
    rng = feasible_range(predictor, space)
    for value in (rng.low + 0.2 * (rng.high - rng.low), rng.low + 0.8 * (rng.high - rng.low)):
        specs = archs_near(predictor, space, value, 6, band=0.02, seed=1)
        assert len({str(s) for s in specs}) == 6
        assert np.all(np.abs(predictor.predict(specs) / value - 1) <= 0.02)
    with pytest.raises(SearchError, match="edge of the feasible range"):
        archs_near(predictor, space, 2 * rng.high, 2)


def test_calibration_recovers_the_drift_of_the_device() -> None:
    space, predictor = toy_space(), toy_predictor()
    measure, calls = drifted_device(space, 1.08)
    calibration = calibrate(predictor, space, 2.5, measure, 9, seed=2)
    assert len(calls) == 9 and len(calibration.points) == 9
    ratios = [p["measured"] / p["predicted"] for p in calibration.points]
    assert calibration.factor == pytest.approx(float(np.median(ratios)))
    assert calibration.factor == pytest.approx(1.08, abs=0.03)  # the per-op error averages out near the target


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


def test_closed_loop_lands_the_measured_latency_on_the_target(sample, tmp_path) -> None:
    space, predictor = toy_space(), toy_predictor()
    target = 2.5
    search(space, [Target(predictor, target)], sample, CONFIG, tmp_path / "run")
    measure, _ = drifted_device(space, 1.10)
    searched = load_specs(tmp_path / "run" / "arch.json")[0]
    first = measure(searched)
    assert abs(first / target - 1) > 0.05  # open loop: the predictor's landing misses the device by the drift
    result = correct(
        tmp_path / "run", space, [Target(predictor, target)], CONFIG, measure, tolerance=0.01, rounds=4, data=sample
    )
    assert result.within_tolerance and abs(result.rounds[-1]["error"]) <= 0.01
    assert 2 <= len(result.rounds) <= 5 and result.rounds[0]["measured"] == pytest.approx(first)
    assert all("factor" in r for r in result.rounds[:-1]) and "factor" not in result.rounds[-1]
    assert result.rounds[0]["factor"] == pytest.approx(first / float(predictor.predict(searched)), rel=1e-6)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["correction"]["within_tolerance"] and len(summary["correction"]["rounds"]) == len(result.rounds)
    assert summary["arch"] == result.rounds[-1]["arch"]


def test_correction_needs_a_latency_target(sample, tmp_path) -> None:
    space, predictor = toy_space(), toy_predictor()
    predictor.meta.metric = "energy_mJ"
    with pytest.raises(SearchError, match="latency target"):
        correct(tmp_path, space, [Target(predictor, 2.5)], CONFIG, lambda arch: 1.0, data=sample)


def test_correction_keeps_the_accuracy_term(tmp_path) -> None:
    space, predictor = toy_space(), toy_predictor()
    with pytest.raises(SearchError, match="accuracy term"):
        correct(tmp_path, space, [Target(predictor, 2.5)], replace(CONFIG, accuracy=True), lambda arch: 1.0)


def test_correction_stops_when_the_device_puts_the_target_out_of_reach(sample, tmp_path) -> None:
    space, predictor = toy_space(), toy_predictor()
    target = 1.2 * feasible_range(predictor, space).low
    search(space, [Target(predictor, target)], sample, CONFIG, tmp_path / "run")
    measure, calls = drifted_device(space, 3.0)  # three times slower: T is below the rescaled minimum
    result = correct(tmp_path / "run", space, [Target(predictor, target)], CONFIG, measure, rounds=3, data=sample)
    assert not result.within_tolerance and len(result.rounds) == 1 and len(calls) == 1
    assert "infeasible" in result.rounds[0]["stopped"] and result.predictor is predictor

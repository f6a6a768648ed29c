"""``edgenas.search.landing.land``: every way of landing records the same section, and a landing run again starts
from what the search found."""

from __future__ import annotations

import json
import shutil

import pytest
from _toy import toy_predictor, toy_space
from test_calibrate import CONFIG, drifted_device

from edgenas.errors import SearchError
from edgenas.search.landing import LANDINGS, LandingPolicy, land
from edgenas.search.lightnas import Target, search
from edgenas.spaces import load_specs
from edgenas.train import load_dataset

TARGET = 2.5
MEASURED_KEYS = {"mode", "runtime", "median_ms", "loads", "error", "within_tolerance", "tolerance", "rounds"}
ROUND_KEYS = {"round", "arch", "predicted", "measured", "error"}


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


@pytest.fixture(scope="module")
def searched(tmp_path_factory, sample):
    run = tmp_path_factory.mktemp("landing") / "search"
    search(toy_space(), [Target(toy_predictor(), TARGET)], sample, CONFIG, run)
    return run


def _land(searched, tmp_path, sample, mode: str, budget: int = 6):
    run = tmp_path / mode
    shutil.copytree(searched, run)
    space = toy_space()
    measure, calls = drifted_device(space, 1.10)
    policy = LandingPolicy(mode, budget, tolerance=0.01, loads=1, steps=100)
    measured = land(run, space, [Target(toy_predictor(), TARGET)], CONFIG, measure, policy, runtime="sim", data=sample)
    return run, measured, calls


@pytest.mark.parametrize("mode", list(LANDINGS))
def test_every_landing_records_the_same_section_and_keeps_what_it_judged(searched, tmp_path, sample, mode):
    run, measured, calls = _land(searched, tmp_path, sample, mode)
    summary = json.loads((run / "summary.json").read_text())
    found = load_specs(searched / "arch.json")[0]
    assert set(measured) == MEASURED_KEYS and summary["measured"] == measured and measured["mode"] == mode
    assert all(set(r) >= ROUND_KEYS for r in measured["rounds"]) and len(measured["rounds"]) == len(calls)
    assert measured["rounds"][0]["arch"] == str(found) == summary["searched_arch"]  # the search's own arch first
    assert measured["error"] == pytest.approx(measured["median_ms"] / TARGET - 1)
    kept = str(load_specs(run / "arch.json")[0])
    assert kept in {r["arch"] for r in measured["rounds"]}
    if mode == "measure":  # the device is 10% slower than the predictor: one measurement only says so
        assert len(calls) == 1 and not measured["within_tolerance"] and kept == str(found)
    else:
        assert measured["within_tolerance"] and abs(measured["error"]) <= 0.01


def test_a_landing_run_again_starts_from_the_searched_arch(searched, tmp_path, sample):
    run, first, _ = _land(searched, tmp_path, sample, "close-loop")
    assert str(load_specs(run / "arch.json")[0]) != first["rounds"][0]["arch"]  # it moved to land
    space = toy_space()
    measure, _ = drifted_device(space, 1.10)
    again = land(
        run,
        space,
        [Target(toy_predictor(), TARGET)],
        CONFIG,
        measure,
        LandingPolicy("close-loop", 6, 0.01, 1),
        runtime="sim",
    )
    assert again["rounds"][0]["arch"] == first["rounds"][0]["arch"] and again["median_ms"] == first["median_ms"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (LandingPolicy("settle"), "unknown landing 'settle'; one of measure, correct, close-loop"),
        (LandingPolicy("correct", budget=0), "budget, loads and steps >= 1"),
        (LandingPolicy("close-loop", tolerance=1.5), r"tolerance in \(0, 1\)"),
        (LandingPolicy("correct"), "'correct' landing needs a latency target first"),
    ],
)
def test_a_bad_policy_is_refused_before_anything_is_measured(searched, policy, message):
    energy = toy_predictor()
    energy.meta.metric = "energy_mJ"
    targets = [Target(energy, TARGET)]
    with pytest.raises(SearchError, match=message):
        land(searched, toy_space(), targets, CONFIG, lambda arch: pytest.fail("measured"), policy, runtime="sim")


def test_a_target_in_the_landing_only_needs_the_closed_loop(searched):
    from dataclasses import replace

    config = replace(CONFIG, budget_term="landing")
    targets = [Target(toy_predictor(), TARGET)]
    for mode in ("measure", "correct"):
        with pytest.raises(SearchError, match="land it with the closed loop"):
            land(
                searched,
                toy_space(),
                targets,
                config,
                lambda a: pytest.fail("measured"),
                LandingPolicy(mode),
                runtime="sim",
            )

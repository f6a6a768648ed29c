"""Where to profile (``edgenas.search.coverage``): plans over the whole latency range and near targets, and the
``profile --cover`` / ``profile --near`` commands on a real runtime (tiny network, few repeats)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _device import SimulatedDevice
from _toy import toy_predictor, toy_space

from conftest import run_cli as run
from edgenas.hardware import MeasurementStore
from edgenas.predictors import Predictor
from edgenas.search.budget import feasible_range
from edgenas.search.coverage import cover_specs, data_range_warning

TINY = ["mbv2-cifar", "--set", "width=0.25", "--runtime", "ort-cpu", "--warmup", "1", "--repeats", "3", "--json"]


def test_a_covering_plan_spreads_over_the_range_where_uniform_samples_pile_up() -> None:
    space = toy_space()
    predictor = toy_predictor(space)
    reach = feasible_range(predictor, space)
    plan = cover_specs(predictor, space, 40, seed=0)
    uniform = np.asarray(predictor.predict(space.sample(seed=0, n=40)))
    covered = np.asarray(predictor.predict(plan))
    assert len({str(s) for s in plan}) == len(plan) >= 38
    span = reach.high - reach.low
    assert covered.min() <= reach.low + 0.05 * span and covered.max() >= reach.high - 0.05 * span
    assert (covered.max() - covered.min()) > 2 * (uniform.max() - uniform.min())
    # evenly: every tenth of the range holds some of the plan
    assert len(np.unique(np.minimum(9, ((covered - reach.low) / span * 10).astype(int)))) == 10


def test_a_covering_profile_reaches_further_than_a_uniform_one_on_a_simulated_device() -> None:
    space = toy_space()
    device = SimulatedDevice(space, seed=0)
    uniform, covering = device.profile(200), device.profile_covering(200)
    assert covering.values.min() < uniform.values.min() and covering.values.max() > uniform.values.max()


def test_the_data_range_warning_names_the_range_and_the_fix() -> None:
    predictor = toy_predictor()
    predictor.meta.value_range = (3.0, 4.0)
    assert data_range_warning(predictor, 3.5) is None
    warning = data_range_warning(predictor, 2.2, space="mbv2-cifar")
    assert "3..4 ms" in warning and "edgenas profile mbv2-cifar --near 2.2" in warning


def test_profile_cover_and_near_measure_only_their_plans_and_resume(tmp_path, capsys) -> None:
    store = tmp_path / "m.sqlite"
    code, out, err = run(["profile", *TINY, "--n", "8", "--cover", "--store", str(store)], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert [p["name"] for p in report["phases"]] == ["uniform", "cover"] and report["measured"] == 8
    code, out, _ = run(["profile", *TINY, "--n", "8", "--cover", "--store", str(store)], capsys)
    assert code == 0 and json.loads(out)["measured"] == 0 and json.loads(out)["skipped"] == 8

    planner = toy_predictor(toy_space()).save(tmp_path / "p.pt")
    near = ["--near", "3.0", "--n", "3", "--band", "0.02", "--predictor", str(planner), "--store", str(store)]
    code, out, err = run(["profile", *TINY, *near], capsys)
    assert code == 0, err
    assert json.loads(out)["measured"] == 3
    with MeasurementStore(store, create=False) as db:
        assert db.count() == 11
        archs = [r[0] for r in db.db.execute("SELECT arch FROM archs ORDER BY id").fetchall()][8:]
    predicted = Predictor.load(planner).predict([toy_space().parse(a) for a in archs])
    assert len(archs) == 3 and np.all(np.abs(np.asarray(predicted) / 3.0 - 1) <= 0.02)
    code, out, _ = run(["profile", *TINY, *near], capsys)  # the store already holds 3 archs near 3 ms
    assert code == 0 and json.loads(out)["measured"] == 0

    code, out, _ = run(["profile", *TINY, *near[:1], "50", *near[2:]], capsys)
    assert code == 2 and "outside what the planning predictor reaches" in out
    code, out, _ = run(["profile", *TINY, "--near", "3", "--store", str(tmp_path / "empty.sqlite")], capsys)
    assert code == 2 and "profile the space first" in out


@pytest.mark.parametrize("flags", [["--cover", "--near", "3"], ["--predictor", "{p}"]])
def test_profile_refuses_mixed_plans(flags, tmp_path, capsys) -> None:
    planner = toy_predictor(toy_space()).save(tmp_path / "p.pt")
    flags = [f.replace("{p}", str(planner)) for f in flags]
    code, out, _ = run(["profile", *TINY, *flags, "--store", str(tmp_path / "m.sqlite")], capsys)
    assert code == 2 and ("not both" in out or "goes with --near" in out)
    assert not (tmp_path / "m.sqlite").exists()

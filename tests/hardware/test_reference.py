"""A reference timed beside every measurement (issue 30): ratios that the device's level cancels, sessions and
levels in the store, old stores upgraded, the remote runner's rows carrying their reference."""

from __future__ import annotations

import sqlite3
import sys

import numpy as np
import pytest

from edgenas.errors import StoreError
from edgenas.hardware import RuntimeOptions
from edgenas.hardware.device import SimulatedDevice, latency_fn
from edgenas.hardware.protocol import Protocol, measure_beside
from edgenas.hardware.reference import Anchor, reference_arch
from edgenas.hardware.store import SCHEMA_VERSION, MeasurementKey, MeasurementStore
from edgenas.spaces import get_space

FAST = Protocol(warmup=1, repeats=9, max_rel_iqr=0.5, max_retries=0)


def _space():
    return get_space("mbv2-cifar", width=0.25)


def _cost(spec) -> float:
    """A known latency at level 1 (ms): 1 + 0.1 per layer's op index."""
    return 1.0 + 0.1 * float(sum(spec.choices))


def test_measure_beside_cancels_a_level_that_moves_between_rounds() -> None:
    level = iter(np.repeat(np.linspace(1.0, 2.0, 40), 3))  # the device slows down 2x over the session
    runs = [lambda c=c: c * next(level) for c in (2.0, 5.0)]
    (a, b), ref = measure_beside(runs, lambda: 4.0 * next(level), Protocol(warmup=1, repeats=12, max_retries=0))
    assert a.relative == pytest.approx(0.5) and b.relative == pytest.approx(1.25)
    assert a.rel_iqr > 0.1 and a.flagged  # its milliseconds moved with the level within the session
    assert ref.median_ms == pytest.approx(a.reference_ms, rel=0.1) and ref.n == 12


def test_the_reference_is_the_median_arch_by_multiply_adds_and_fixed() -> None:
    space = _space()
    first = reference_arch(space)
    assert first == reference_arch(get_space("mbv2-cifar", width=0.25)) and first.space_hash == space.config_hash
    assert reference_arch(get_space("mbv2-cifar", width=0.5)).space_hash != first.space_hash


def _drifting(levels: list[float], noise: float = 0.0, seed: int = 0) -> SimulatedDevice:
    it, rng = iter(levels), np.random.default_rng(seed)
    return SimulatedDevice(
        _cost, options=RuntimeOptions(resolution=32), level=lambda: next(it), noise=lambda: 1 + rng.normal(0, noise)
    )


def test_a_profile_on_a_drifting_device_stores_levels_and_reads_at_the_nominal_level(tmp_path) -> None:
    space = _space()
    specs = space.sample(seed=1, n=7)
    levels = [1.0, 1.3, 0.8, 1.1, 1.2, 0.9, 1.05]
    device = _drifting(levels)
    with MeasurementStore(tmp_path / "s.db") as db:
        report = device.profile(specs, db)
        key, ref = report.key, reference_arch(space)
        assert report.reference == str(ref)
        got = db.levels("simulated", key)
        assert [r["level_ms"] for r in got] == pytest.approx([_cost(ref) * x for x in levels])
        assert {r["reference"] for r in got} == {str(ref)} and db.reference("simulated", key, space.config_hash)
        nominal = db.nominal_level("simulated", key)
        assert nominal == pytest.approx(_cost(ref) * 1.05)  # the median of the seven levels
        at_nominal = db.values("simulated")
        raw = db.values("simulated", raw=True)
        for spec, level in zip(specs, levels, strict=True):
            k = (spec.space_hash, str(spec))
            assert raw[k] == pytest.approx(_cost(spec) * level)
            assert at_nominal[k] == pytest.approx(_cost(spec) * 1.05)  # one unit, whatever the moment
        assert db.unanchored("simulated") == 0
        with pytest.raises(StoreError, match="levels of two references"):
            db.add_session(db.device_id("simulated"), key, str(specs[0]), 1.0, space_hash=space.config_hash)


def test_a_measurement_reads_its_latency_at_the_nominal_level() -> None:
    space = _space()
    spec, ref = space.sample(seed=3, n=1)[0], reference_arch(space)
    device = _drifting([1.4, 1.4]).with_anchor(Anchor(ref, nominal_ms=2.0))
    (m,) = device.measure([spec])
    assert m.median_ms == pytest.approx(_cost(spec) * 1.4) and m.level_ms == pytest.approx(_cost(ref) * 1.4)
    assert m.relative == pytest.approx(_cost(spec) / _cost(ref)) and m.nominal_level_ms == 2.0
    assert m.nominal_ms == pytest.approx(2.0 * _cost(spec) / _cost(ref)) and m.reference == str(ref)
    assert latency_fn(device)(spec) == pytest.approx(m.nominal_ms)
    assert m.as_dict()["nominal_ms"] == pytest.approx(m.nominal_ms)
    (plain,) = _drifting([1.4]).measure([spec])
    assert plain.level_ms is None and plain.nominal_ms == plain.median_ms


def test_a_schema_1_store_is_upgraded_and_its_rows_keep_their_milliseconds(tmp_path) -> None:
    path = tmp_path / "old.db"
    space = _space()
    spec = space.sample(seed=0, n=1)[0]
    with MeasurementStore(path) as db:
        db.add(db.device_id("pi"), spec, MeasurementKey("ort-cpu"), 3.5)
    con = sqlite3.connect(path)  # make it as schema 1 left it
    con.executescript(
        "DROP TABLE sessions; ALTER TABLE measurements DROP COLUMN session_id; "
        "ALTER TABLE measurements DROP COLUMN relative; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    con.close()
    with MeasurementStore(path) as db:
        assert db.values("pi") == {(spec.space_hash, str(spec)): 3.5}
        assert (
            db.unanchored("pi") == 1
            and db.levels("pi") == []
            and db.nominal_level("pi", MeasurementKey("ort-cpu")) is None
        )
        version = db.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_a_remote_runner_result_carries_its_reference(tmp_path) -> None:
    from edgenas.hardware.remote import RemoteDevice

    space = _space()
    spec, ref = space.sample(seed=2, n=1)[0], reference_arch(space)
    options = RuntimeOptions(resolution=32)
    device = RemoteDevice(f"{sys.executable} {{runner}} {{dir}}", options, tmp_path, FAST, Anchor(ref, 1.0))
    (m,) = device.measure([spec], loads=2)
    assert m.level_ms is not None and m.level_ms > 0 and m.relative is not None and m.relative > 0
    assert all(load.reference_ms is not None for load in m.per_load) and m.nominal_ms == pytest.approx(m.relative)
    with MeasurementStore(tmp_path / "s.db") as db:
        report = device.with_anchor(None).profile([spec], db, device_name="pi")
        (level,) = db.levels("pi", report.key)
        assert level["reference"] == str(ref) and level["level_ms"] > 0
        (row,) = db.rows()
        # the row is filed in its own session, at that session's level (no two timings compared)
        assert row["session"] is not None and row["level_ms"] == level["level_ms"] and row["relative"] > 0


def test_a_predictor_fitted_on_a_drifting_profile_predicts_ms_at_the_nominal_level(tmp_path) -> None:
    from edgenas.predictors import FitConfig, fit_predictor, table_from_store

    space = _space()
    specs = space.sample(seed=4, n=60)
    rng = np.random.default_rng(0)
    levels = list(rng.uniform(0.7, 1.4, len(specs)))
    with MeasurementStore(tmp_path / "s.db") as db:
        report = _drifting(levels, noise=0.002).profile(specs, db)
        nominal = db.nominal_level("simulated", report.key)
    factor = nominal / _cost(reference_arch(space))  # the nominal level as a factor of level 1
    truth = np.asarray([_cost(s) * factor for s in specs])

    def error(raw: bool) -> float:
        table = table_from_store(tmp_path / "s.db", "simulated", space, raw=raw)
        predictor = fit_predictor("lut", table, FitConfig(seed=0))
        return float(np.median(np.abs(np.asarray(predictor.predict(specs)) / truth - 1)))

    assert error(raw=False) < 0.01  # relative values x nominal level: the drift is gone
    assert error(raw=True) > 0.05  # the milliseconds of each moment: the drift is in the fit
    # at another level L, ms = prediction x L / nominal: the ratio of two archs does not depend on the level
    table = table_from_store(tmp_path / "s.db", "simulated", space, level_ms=2 * nominal)
    assert table.values == pytest.approx([2 * _cost(s) * factor for s in table.specs], rel=0.01)


def test_one_core_pins_the_session_and_restores_the_affinity() -> None:
    import os

    from edgenas.hardware.affinity import one_core

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = os.sched_getaffinity(0)
    with one_core() as core:
        inside = os.sched_getaffinity(0)
    assert os.sched_getaffinity(0) == before
    if core is None:  # a single allowed core, or no permission: nothing to pin
        assert inside == before
    else:
        assert inside == {core} and core in before
    with one_core(enabled=False) as core:
        assert core is None and os.sched_getaffinity(0) == before


def test_a_session_far_above_the_nominal_level_is_called_contended() -> None:
    from edgenas.hardware.device import Measurement
    from edgenas.pipeline._device import CONTENDED_LEVEL, contention_warning

    def at(level: float) -> Measurement:
        return Measurement(
            "x", 2.0 * level, 0.0, 1, "ort-cpu", 1, 1, level_ms=level, relative=2.0, nominal_level_ms=1.0
        )

    assert contention_warning(at(1.1)) is None and contention_warning(Measurement("x", 1, 0, 1, "r", 1, 1)) is None
    assert "+40% slower than its nominal level" in contention_warning(at(1.4))
    assert at(CONTENDED_LEVEL).nominal_ms == 2.0  # the verdict itself is still read at the nominal level


def test_a_landing_reads_the_level_of_its_store_else_of_its_predictor(tmp_path) -> None:
    from edgenas.hardware.reference import anchor_from_level
    from edgenas.predictors import FitConfig, fit_predictor, table_from_store
    from edgenas.search.landing import store_anchor

    space = _space()
    with MeasurementStore(tmp_path / "s.db") as db:
        report = _drifting([1.0, 2.0, 3.0, 2.5, 1.5, 2.0, 2.0, 2.0]).profile(space.sample(seed=5, n=8), db)
    ref = reference_arch(space)
    from_store = store_anchor(tmp_path / "s.db", "simulated", "latency_ms", "simulated", space)
    assert from_store.reference == ref and from_store.nominal_ms == pytest.approx(2.0 * _cost(ref))
    table = table_from_store(tmp_path / "s.db", "simulated", space)
    assert table.level == {"reference": str(ref), "nominal_ms": pytest.approx(2.0 * _cost(ref))}
    predictor = fit_predictor("mlp", table, FitConfig(seed=0, epochs=2))  # the level travels with the predictor
    fitted_at = store_anchor(None, None, "latency_ms", "ort-cpu", space, predictor)
    assert fitted_at.reference == ref and fitted_at.nominal_ms == table.level["nominal_ms"]
    bare = store_anchor(None, None, "latency_ms", "ort-cpu", space)
    assert bare.reference == ref and bare.nominal_ms is None  # levels recorded, milliseconds of the moment
    assert anchor_from_level({"reference": str(ref)}, get_space("nb201")) is None  # another space's reference
    assert report.key.runtime == "simulated"


def test_a_device_anchored_to_a_module_still_profiles_beside_the_spaces_reference(tmp_path) -> None:
    from torch import nn

    space = _space()
    device = _drifting([1.0, 1.0]).with_anchor(Anchor(nn.Identity(), None, "ungrafted"))
    with MeasurementStore(tmp_path / "s.db") as db:
        report = device.profile(space.sample(seed=6, n=2), db)
    assert report.reference == str(reference_arch(space))

"""The measurement store: no duplicates, commits as it goes, concurrent writers, kill-and-rerun, import/export."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from edgenas.errors import StoreError
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.hardware.store_import import ImportColumn, import_table
from edgenas.spaces import get_space

KEY = MeasurementKey("ort-cpu", "latency_ms", 1, 32, 1)


def test_add_has_and_no_duplicates(tmp_path):
    space = get_space("nb201")
    a, b = space.from_index(1), space.from_index(2)
    with MeasurementStore(tmp_path / "m.sqlite") as db:
        dev = db.device_id("dev")
        assert db.device_id("dev") == dev
        assert not db.has(dev, a, KEY)
        assert db.add(dev, a, KEY, 1.5, iqr=0.1, n=50)
        assert not db.add(dev, a, KEY, 9.9)  # same key: kept as is
        assert db.add(dev, a, MeasurementKey("ort-cpu", "latency_ms", 8, 32, 1), 4.0)  # another batch
        assert db.add(dev, b, KEY, 2.5)
        assert db.has(dev, a, KEY) and db.count() == 3
        assert db.values("dev", batch=1) == {(a.space_hash, str(a)): 1.5, (b.space_hash, str(b)): 2.5}
        with pytest.raises(StoreError, match="several latency_ms rows per arch"):
            db.values("dev")
        with pytest.raises(StoreError, match="no device 'nope'"):
            db.values("nope")
    # committed as it went: a second connection sees everything
    with MeasurementStore(tmp_path / "m.sqlite", create=False) as again:
        assert again.count() == 3


def _writer(path, start, stop, barrier):
    space = get_space("nb201")
    with MeasurementStore(path) as db:
        dev = db.device_id("shared")
        barrier.wait()
        for i in range(start, stop):
            db.add(dev, space.from_index(i), KEY, float(i))


def test_two_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path):
    path = tmp_path / "m.sqlite"
    MeasurementStore(path).close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_writer, args=(path, 0, 150, barrier)),
        ctx.Process(target=_writer, args=(path, 100, 250, barrier)),
    ]  # 50 keys written by both
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with MeasurementStore(path) as db:
        assert db.count() == 250
        values = db.values("shared")
    assert sorted(values.values()) == [float(i) for i in range(250)]


def test_killed_profiling_resumes_without_loss_or_duplicates(tmp_path):
    store = tmp_path / "m.sqlite"
    args = [
        sys.executable,
        "-m",
        "edgenas",
        "profile",
        "nb201",
        "--set",
        "channels=4",
        "--set",
        "cells_per_stage=1",
        "--n",
        "12",
        "--seed",
        "3",
        "--runtime",
        "torch-cpu",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--store",
        str(store),
        "--store-device",
        "cpu",
        "--json",
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if store.is_file():
            try:
                stored = sqlite3.connect(store, timeout=5).execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 3:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with MeasurementStore(store) as db:
        after_kill = db.count()
    if after_kill >= 12:
        pytest.skip("profiling finished before it could be killed")
    assert after_kill >= 3
    rerun = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    import json

    report = json.loads(rerun.stdout)
    assert report["skipped"] == after_kill and report["measured"] + report["skipped"] == report["requested"]
    with MeasurementStore(store) as db:
        rows = list(db.rows())
    assert len(rows) == report["requested"]
    assert len({r["arch"] for r in rows}) == len(rows)


def test_import_skips_bad_rows_with_counts_and_export_round_trips(tmp_path):
    space = get_space("nb201")
    table = tmp_path / "t.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "lat", "energy"])
        w.writerow([str(space.from_index(0)), "1.5", "3.0"])
        w.writerow([str(space.from_index(1)), "", "2.0"])  # empty latency
        w.writerow(["|bogus~0|", "1.0", "1.0"])  # bad arch
        w.writerow([str(space.from_index(2)), "-1", "0"])  # non-positive values
    with MeasurementStore(tmp_path / "m.sqlite") as db:
        report = import_table(
            db,
            table,
            space,
            "arch_str",
            [ImportColumn("lat", "devx"), ImportColumn("energy", "devx", "energy_mJ")],
            source="test",
        )
        assert report.rows == 4 and report.added == 3
        assert report.skipped == {"bad arch": 1, "empty or non-positive value": 3, "not a number": 0}
        again = import_table(db, table, space, "arch_str", [ImportColumn("lat", "devx")], source="test")
        assert again.added == 0  # importing twice adds nothing
        n = db.export_csv(tmp_path / "out.csv")
        assert n == 3 and db.devices()[0]["kind"] == "imported"
    with (tmp_path / "out.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["metric"], float(r["value"])) for r in rows} == {
        ("latency_ms", 1.5),
        ("energy_mJ", 3.0),
        ("energy_mJ", 2.0),
    }
    with pytest.raises(StoreError, match="missing column"), MeasurementStore(tmp_path / "m.sqlite") as db:
        import_table(db, table, space, "arch", [ImportColumn("lat", "d")], source="t")


def test_corrupted_and_unwritable_stores(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database, just bytes" * 100)
    with pytest.raises(StoreError, match="cannot open measurement store"):
        MeasurementStore(bad)
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create folder"):
        MeasurementStore(tmp_path / "file" / "m.sqlite")
    with pytest.raises(StoreError, match="no measurement store"):
        MeasurementStore(tmp_path / "missing.sqlite", create=False)

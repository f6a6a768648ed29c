"""The hardware commands end to end, and their one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import run_cli as run
from edgenas.spaces import get_space

TINY = ["--space", "nb201", "--set", "channels=4", "--set", "cells_per_stage=1"]


def test_measure_json(capsys):
    code, out, _ = run(
        ["measure", "6111", *TINY, "--runtime", "ort-cpu", "--warmup", "1", "--repeats", "5", "--no-energy", "--json"],
        capsys,
    )
    row = json.loads(out)["measurements"][0]
    assert code == 0 and row["median_ms"] > 0 and row["n"] == 5 and row["runtime"] == "ort-cpu"


def test_profile_twice_skips_what_is_stored(tmp_path, capsys):
    store = tmp_path / "m.sqlite"
    args = [
        "profile",
        "nb201",
        "--set",
        "channels=4",
        "--set",
        "cells_per_stage=1",
        "--n",
        "3",
        "--runtime",
        "torch-cpu",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--store",
        str(store),
        "--json",
    ]
    code, out, _ = run(args, capsys)
    first = json.loads(out)
    assert code == 0 and first["measured"] == 3 and first["skipped"] == 0
    code, out, _ = run([*args[:7], "5", *args[8:]], capsys)  # --n 5: the first 3 samples are the same
    second = json.loads(out)
    assert second["skipped"] == 3 and second["measured"] == 2
    code, out, _ = run(["store", "info", "--store", str(store), "--json"], capsys)
    info = json.loads(out)
    assert info["measurements"] == 5 and info["devices"][0]["kind"] == "measured"
    assert info["devices"][0]["fingerprint"]["cpu_count"] >= 1


def test_profile_with_ordered_sampling_measures_the_ordered_draw(tmp_path, capsys):
    store, out_csv = tmp_path / "m.sqlite", tmp_path / "all.csv"
    tiny = ["--set", "channels=4", "--set", "cells_per_stage=1"]
    args = ["profile", "nb201", *tiny, "--n", "5", "--sampling", "ordered", "--runtime", "torch-cpu"]
    code, _, err = run([*args, "--warmup", "1", "--repeats", "3", "--store", str(store), "--json"], capsys)
    assert code == 0, err
    code, _, err = run(["store", "export", "--store", str(store), "-o", str(out_csv)], capsys)
    assert code == 0, err
    with out_csv.open() as f:
        stored = {row["arch"] for row in csv.DictReader(f)}
    space = get_space("nb201", channels=4, cells_per_stage=1)
    assert stored == {str(s) for s in space.sample(seed=0, n=5, ordered=True)}  # one group: every op on every edge
    assert {a.split("|")[1].split("~")[0] for a in stored} == set(space.op_names)  # edge 1<-0 ran every op once


def test_import_monotonic_export(tmp_path, capsys):
    space = get_space("nb201")
    table = tmp_path / "two_devices.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "fast", "slow"])
        for i in range(20):
            w.writerow([str(space.from_index(i)), 1.0 + i, 3.0 * (1.0 + i)])
    store = tmp_path / "m.sqlite"
    code, out, _ = run(
        [
            "store",
            "import",
            str(table),
            "--store",
            str(store),
            "--space",
            "nb201",
            "--arch-column",
            "arch",
            "--value-column",
            "fast",
            "--value-column",
            "slow",
            "--store-device",
            "toy",
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["added"] == 40
    code, out, _ = run(
        ["monotonic", "--store-device", "toy-slow", "--store-device", "toy-fast", "--store", str(store), "--json"],
        capsys,
    )
    pair = json.loads(out)["pairs"][0]
    assert code == 0 and pair["gamma"] == pytest.approx(3.0) and pair["kendall_tau"] == pytest.approx(1.0)
    assert json.loads(out)["groups"] == [["toy-slow", "toy-fast"]]
    code, out, _ = run(["store", "export", "--store", str(store), "-o", str(tmp_path / "all.csv")], capsys)
    assert code == 0 and "40 measurements" in out


def test_imported_benchmarks_rank_agreement(data_dir, tmp_path, capsys):
    store = tmp_path / "ext.sqlite"
    code, out, _ = run(
        [
            "store",
            "import",
            str(data_dir / "hwnasbench" / "hwnasbench_nb201_cifar10.csv"),
            "--store",
            str(store),
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["added"] == 3 * 15625
    code, out, _ = run(["monotonic", "--store", str(store), "--json"], capsys)
    pair = json.loads(out)["pairs"][0]
    assert pair["n"] == 15625 and pair["spearman"] == pytest.approx(0.65, abs=0.01)  # as the data README says


def test_comfort_cli_writes_a_plot(tmp_path, capsys):
    png = tmp_path / "zone.png"
    code, out, _ = run(
        [
            "comfort",
            "6111",
            *TINY,
            "--runtime",
            "torch-cpu",
            "--scales",
            "1,2",
            "--warmup",
            "1",
            "--repeats",
            "5",
            "--plot",
            str(png),
            "--json",
        ],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and png.is_file() and [r["scale"] for r in result["rows"]] == [1.0, 2.0]
    assert result["rows"][1]["intensity"] > result["rows"][0]["intensity"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["measure", "6111", "--space", "nb201", "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
        (["store", "info", "--store", "{tmp}/missing.sqlite"], "does not exist"),
        (["store", "info", "--store", "{tmp}/corrupt.sqlite"], "cannot open measurement store"),
        (["profile", "nb201", "--n", "1", "--store", "{tmp}/blocker/m.sqlite"], "cannot create folder"),
        (["store", "import", "{tmp}/corrupt.sqlite", "--store", "{tmp}/m.sqlite"], "not a known table"),
        (["comfort", "6111", "--space", "nb201", "--scales", "2:3:0.5"], "must be positive and include 1"),
        (["monotonic", "--store-device", "a", "--store", "{tmp}/missing.sqlite"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "corrupt.sqlite").write_bytes(b"garbage" * 200)
    (tmp_path / "blocker").write_text("")
    code, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err

"""``edgenas predictor fit|eval|compare|adapt`` on a small CSV table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli as run
from edgenas.spaces import get_space


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    space = get_space("nb201")
    specs = space.sample(seed=0, n=160)
    x = space.one_hot(specs).numpy()
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 1, x.shape[1:]), rng.uniform(0, 1, x.shape[1:])
    path = tmp_path_factory.mktemp("data") / "lat.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "dev_a", "dev_b"])
        for spec, row in zip(specs, x, strict=True):
            w.writerow([str(spec), (row * a).sum() + 1, 3 * ((row * (a + b)).sum() + 1)])
    return path


def test_fit_eval_adapt(table, tmp_path, capsys):
    src = ["--table", str(table), "--space", "nb201", "--arch-column", "arch_str"]
    p = tmp_path / "p.pt"
    code, out, _ = run(
        [
            "predictor",
            "fit",
            *src,
            "--value-column",
            "dev_a",
            "--kind",
            "lut",
            "--train-size",
            "120",
            "-o",
            str(p),
            "--json",
        ],
        capsys,
    )
    fit = json.loads(out)
    assert code == 0 and fit["train"] == 120 and fit["test"] == 40 and fit["scores"]["spearman"] > 0.999
    code, out, _ = run(
        [
            "predictor",
            "eval",
            str(p),
            "--table",
            str(table),
            "--arch-column",
            "arch_str",
            "--value-column",
            "dev_a",
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["scores"]["n"] == 160
    code, out, _ = run(
        [
            "predictor",
            "adapt",
            str(p),
            "--table",
            str(table),
            "--arch-column",
            "arch_str",
            "--value-column",
            "dev_b",
            "--shots",
            "60",
            "-o",
            str(tmp_path / "q.pt"),
            "--json",
        ],
        capsys,
    )
    adapted = json.loads(out)
    assert code == 0 and adapted["after"]["mape"] < adapted["before"]["mape"]


def test_compare_prints_one_row_per_kind_and_plots(table, tmp_path, capsys):
    png = tmp_path / "scatter.png"
    code, out, _ = run(
        [
            "predictor",
            "compare",
            "--table",
            str(table),
            "--space",
            "nb201",
            "--arch-column",
            "arch_str",
            "--value-column",
            "dev_a",
            "--kinds",
            "lut,mlp,rf",
            "--epochs",
            "5",
            "--plot",
            str(png),
            "--json",
        ],
        capsys,
    )
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["kind"] for r in rows] == ["lut", "mlp", "rf"] and png.is_file()


def test_predictor_user_errors(table, tmp_path, capsys):
    code, _, err = run(["predictor", "fit", "-o", str(tmp_path / "p.pt")], capsys)
    assert code == 2 and "exactly one data source" in err and err.count("\n") == 1
    code, _, err = run(
        [
            "predictor",
            "compare",
            "--table",
            str(table),
            "--space",
            "nb201",
            "--arch-column",
            "arch_str",
            "--value-column",
            "dev_a",
            "--kinds",
            "xgb",
        ],
        capsys,
    )
    assert code == 2 and "unknown kind(s) xgb" in err
    code, _, err = run(
        [
            "predictor",
            "fit",
            "--table",
            str(table),
            "--space",
            "nb201",
            "--arch-column",
            "nope",
            "--value-column",
            "dev_a",
            "-o",
            str(tmp_path / "p.pt"),
        ],
        capsys,
    )
    assert code == 2 and "missing column(s) nope" in err


def test_lut_command_times_ops_and_fits_the_constant(tmp_path, capsys):
    store = tmp_path / "m.sqlite"
    common = ["--set", "width=0.25", "--set", "resolution=16"]
    code, _, _ = run(
        [
            "profile",
            "mbv2-cifar",
            *common,
            "--n",
            "4",
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
        ],
        capsys,
    )
    assert code == 0
    code, out, _ = run(
        [
            "predictor",
            "lut",
            "mbv2-cifar",
            *common,
            "--store",
            str(store),
            "--store-device",
            "cpu",
            "--runtime",
            "torch-cpu",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "-o",
            str(tmp_path / "lut.pt"),
            "--json",
        ],
        capsys,
    )
    result = json.loads(out)
    allowed = int(get_space("mbv2-cifar", width=0.25, resolution=16).mask().sum())  # 4 layers change shape here
    assert code == 0 and result["ops_timed"] == allowed == 21 * 7 - 4 and result["archs"] == 4
    assert (tmp_path / "lut.pt").is_file()

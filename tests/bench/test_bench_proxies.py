"""The proxy rank study: correlations with intervals, every proxy at every budget, and a resumed study probes
nothing twice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli as run
from conftest import write_nb201_tables
from edgenas.bench.proxies import rank_correlations


def test_rank_correlations_and_their_intervals():
    truth = np.arange(30.0)
    perfect = rank_correlations(truth * 2, truth, bootstrap=200, seed=0)
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["tau_interval"] == pytest.approx([1.0, 1.0])
    noisy = rank_correlations(truth + np.random.default_rng(0).normal(0, 8, 30), truth, bootstrap=200, seed=0)
    low, high = noisy["tau_interval"]
    assert low < noisy["kendall_tau"] < high and 0.2 < noisy["kendall_tau"] < 0.95
    assert rank_correlations(-truth, truth, bootstrap=50, seed=0)["spearman"] == pytest.approx(-1.0)


def test_bench_proxies_reports_every_proxy_at_every_budget_and_resumes(tmp_path, capsys):
    bench = write_nb201_tables(tmp_path / "tables")
    argv = [
        "bench", "proxies", "--n-archs", "4", "--epochs", "2", "--images", "40", "--batch-size", "10",
        "--cells-per-stage", "1", "--channels", "4", "--bootstrap", "20", "--data", "sample",
        "--bench-dir", str(bench), "-o", str(tmp_path / "study"), "--json",
    ]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    first = json.loads(out)
    assert first["probed_now"] == 4 and len(first["cells"]) == 4
    budgets = {(r["proxy"], r["epochs"]) for r in first["rows"] if r["truth"] == "200ep"}
    assert budgets == {
        ("bte", 2),
        ("bte-clamped", 2),
        ("tse", 1),
        ("tse", 2),
        ("tse-e", 1),
        ("tse-e", 2),
        *(("jacobian", e) for e in range(3)),
    }
    assert {r["truth"] for r in first["rows"]} == {"200ep", "12ep"}
    assert (tmp_path / "study" / "ranks.png").stat().st_size > 1000
    code, out, err = run(argv, capsys)
    again = json.loads(out)
    assert code == 0 and again["probed_now"] == 0 and again["rows"] == first["rows"]
    code, out, _ = run([*argv[:-3], "--epochs", "3", *argv[-3:]], capsys)
    assert code == 2 and "probed with other settings" in json.loads(out)["error"]

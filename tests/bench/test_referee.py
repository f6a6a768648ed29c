"""The NAS-Bench-201 referee: lookups, the oracle at a budget, regret and rank (hand-made and real tables)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import NB201_PLANTED, write_nb201_tables
from conftest import run_cli as run
from edgenas.bench import judge, load_nb201, oracle
from edgenas.errors import BenchError
from edgenas.spaces import get_space

ORACLE_EQ, ORACLE_LE, FOUND = NB201_PLANTED


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return load_nb201(write_nb201_tables(tmp_path_factory.mktemp("tables")))


def test_oracle_eq_and_le_on_a_hand_made_table(table):
    eq = oracle(table, "edgegpu", 5.0, tolerance=0.02, constraint="eq")
    assert (eq.index, eq.test_acc, eq.cells) == (ORACLE_EQ[0], 95.0, 3)
    assert eq.mean_test_acc == pytest.approx((95 + 90 + 80) / 3)
    le = oracle(table, "cifar10_edgegpu_latency_ms", 5.0, tolerance=0.02, constraint="le")
    assert (le.index, le.test_acc, le.cells) == (ORACLE_LE[0], 90.0, 2)


def test_regret_rank_and_budget_of_a_found_cell(table):
    budget = oracle(table, "edgegpu", 5.0, tolerance=0.02)
    verdict = judge(table, FOUND[0], budget)
    assert verdict["regret"] == pytest.approx(15.0) and verdict["meets_budget"]
    # its peers are the cells within 2% of its own 4.95 ms: itself and the 5.0 ms one (5.05 ms is 2.02% away)
    assert (verdict["rank"], verdict["peers"]) == (2, 2) and verdict["percentile"] == pytest.approx(50.0)
    assert verdict["latency_error"] == pytest.approx(-0.01)
    far = judge(table, 0, budget)
    assert not far["meets_budget"] and far["regret"] == pytest.approx(45.0)


def test_lookup_by_index_string_and_spec_agree(table):
    space = get_space("nb201")
    for index in (0, 1, 6111, 15624):
        spec = space.from_index(index)
        by_index, by_string, by_spec = table.lookup(index), table.lookup(space.format(spec)), table.lookup(spec)
        assert by_index == by_string == by_spec and by_index["index"] == index


def test_errors(table, tmp_path):
    with pytest.raises(BenchError, match=r"outside 0\.\.15624"):
        table.lookup(15625)
    with pytest.raises(BenchError, match="not a NAS-Bench-201 cell"):
        table.lookup("|conv~0|")
    with pytest.raises(BenchError, match="no latency column 'tx2'"):
        oracle(table, "tx2", 5.0)
    with pytest.raises(BenchError, match=r"no cell .* within 2.0% of 1 ms"):
        oracle(table, "edgegpu", 1.0)
    with pytest.raises(BenchError, match="no NAS-Bench-201 table"):
        load_nb201(tmp_path)


def test_real_tables_agree_with_the_data_readme(data_dir):
    real = load_nb201(data_dir)
    best = int(np.argmax(real.test_acc))
    assert best == 6111 and real.test_acc[best] == pytest.approx(94.37, abs=0.01)  # as shared/data/README.md says
    assert real.lookup(6111) == real.lookup(real.arch[6111])
    unconstrained = oracle(real, "edgegpu", float(real.latency["cifar10_edgegpu_latency_ms"][6111]), tolerance=0.0)
    assert unconstrained.index == 6111


def test_cli_oracle_and_lookup(table, capsys):
    argv = ["bench", "oracle", "--latency-column", "edgegpu", "--target-ms", "5", "--judge", str(FOUND[0])]
    code, out, err = run([*argv, "--bench-dir", str(table.source), "--json"], capsys)
    payload = json.loads(out)
    assert code == 0, err
    assert payload["oracle"]["index"] == ORACLE_EQ[0] and payload["judged"]["regret"] == pytest.approx(15.0)
    code, out, _ = run(["bench", "lookup", "6111", "--bench-dir", str(table.source)], capsys)
    assert code == 0 and "#6111" in out


def test_bench_nb201_searches_and_judges_every_seed(table, tmp_path, capsys):
    """Two tiny GDAS searches on the shipped sample, judged by the hand-made tables; a rerun judges, not searches."""
    tiny = ["--subset", "20", "--epochs", "2", "--batch-size", "10", "--data", "sample"]
    argv = ["bench", "nb201", "--strategy", "gdas", "--seeds", "2", *tiny, "--bench-dir", str(table.source)]
    code, out, err = run([*argv, "-o", str(tmp_path / "b"), "--json"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    cells = [r["index"] for r in payload["records"]]
    assert [r["seed"] for r in payload["records"]] == [0, 1] and payload["summary"]["cells"] == cells
    assert all(r["test_acc"] == table.test_acc[r["index"]] for r in payload["records"])
    assert payload["summary"]["test_acc"]["n"] == 2 and (tmp_path / "b" / "results.md").is_file()
    assert payload["budget"]["cells_per_stage"] == 1  # the CPU default: a one-cell-per-stage search network
    again = json.loads(run([*argv, "-o", str(tmp_path / "b"), "--json"], capsys)[1])
    assert [r["index"] for r in again["records"]] == cells  # finished runs are judged, not searched again
    # a finished run of other options is refused, not judged as this one
    code, _, err = run([*argv, "--fair-warmup", "-o", str(tmp_path / "b")], capsys)
    assert code == 2 and "other options" in err


def test_bench_nb201_with_a_latency_budget(table, tmp_path, capsys):
    from edgenas.predictors import fit_predictor, table_from_csv

    hw = tmp_path / "hw.csv"
    hw.write_text((table.source / "hwnasbench" / "hwnasbench_nb201_cifar10.csv").read_text())
    lut = fit_predictor("lut", table_from_csv(hw, get_space("nb201"), "arch_str", "cifar10_edgegpu_latency_ms"))
    lut.save(tmp_path / "p.pt")
    tiny = ["--subset", "20", "--epochs", "2", "--batch-size", "10", "--data", "sample", "--seeds", "1"]
    tiny += ["--cells-per-stage", "2"]  # a shallower search network; the predictor is the deployed network's
    argv = ["bench", "nb201", "--strategy", "lightnas", *tiny, "--bench-dir", str(table.source)]
    budget = ["--predictor", str(tmp_path / "p.pt"), "--target-ms", "20.5", "--latency-column", "edgegpu"]
    code, out, err = run([*argv, *budget, "-o", str(tmp_path / "b"), "--json"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    record = payload["records"][0]
    assert payload["budget"]["cells_per_stage"] == 2
    config = json.loads((tmp_path / "b" / "seed0" / "config.json").read_text())
    assert config["config"]["supernet_options"] == {"cells_per_stage": 2}
    # the referee's default loop (NNI's, affine-free cells), not the engine's layer-wise defaults
    from edgenas.bench.referee import SEARCH_LOOP

    assert {k: config["config"][k] for k in SEARCH_LOOP} == SEARCH_LOOP and config["config"]["warmup_epochs"] == 0
    assert record["oracle"]["target_ms"] == 20.5 and record["oracle"]["cells"] > 100
    assert record["regret"] == pytest.approx(record["oracle"]["test_acc"] - record["test_acc"])
    assert record["true_latency_ms"] == pytest.approx(table.latency["cifar10_edgegpu_latency_ms"][record["index"]])
    code, _, err = run([*argv, "--target-ms", "20", "-o", str(tmp_path / "c")], capsys)
    assert code == 2 and "needs all three" in err and not (tmp_path / "c").exists()
    # the same finished search landed on T by the closed loop, the tables standing for the device
    code, out, err = run([*argv, *budget, "--land", "6", "-o", str(tmp_path / "b"), "--json"], capsys)
    assert code == 0, err
    landed = json.loads(out)["records"][0]
    assert landed["landing"]["searched_cell"] == record["index"] and 1 <= landed["landing"]["measurements"] <= 6
    true = table.latency["cifar10_edgegpu_latency_ms"][landed["index"]]
    assert landed["true_latency_ms"] == pytest.approx(true)
    if landed["landing"]["within_tolerance"]:
        assert abs(true / 20.5 - 1) <= 0.02
    assert abs(true / 20.5 - 1) <= abs(record["true_latency_ms"] / 20.5 - 1) + 1e-9  # never further from T
    code, _, err = run([*argv, *budget, "--budget-term", "landing", "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and "--land N" in err and not (tmp_path / "d").exists()


def test_protocol_alpha_lr_keeps_steps_times_lr():
    from edgenas.bench.referee import MAX_SCALED_ALPHA_LR, PROTOCOL_ALPHA_LR, Budget, protocol_alpha_lr

    full = Budget(subset=50_000, epochs=50, warmup_epochs=0, batch_size=64)
    assert protocol_alpha_lr(full) == pytest.approx(PROTOCOL_ALPHA_LR)
    small = Budget(subset=5_000, epochs=6, warmup_epochs=1, batch_size=64)  # 39 x 5 = 195 alpha steps
    assert protocol_alpha_lr(small) == pytest.approx(PROTOCOL_ALPHA_LR * 50 * 390 / 195)  # 0.03
    tiny = Budget(subset=200, epochs=2, warmup_epochs=1, batch_size=32)
    assert protocol_alpha_lr(tiny) == MAX_SCALED_ALPHA_LR  # 3 steps: the ceiling, not 1.95
    mid = Budget(subset=25_000, epochs=26, warmup_epochs=1, batch_size=64)
    assert protocol_alpha_lr(mid) * mid.alpha_steps() == pytest.approx(PROTOCOL_ALPHA_LR * 50 * 390)
    # GDAS' budget: 250 epochs, five times DARTS' steps x lr
    assert protocol_alpha_lr(mid, "gdas") == pytest.approx(5 * protocol_alpha_lr(mid))
    full_gdas = Budget(subset=50_000, epochs=250, warmup_epochs=0, batch_size=64)
    assert protocol_alpha_lr(full_gdas, "gdas") == pytest.approx(PROTOCOL_ALPHA_LR)
    with pytest.raises(BenchError, match="alpha budget must be one of darts, gdas"):
        protocol_alpha_lr(mid, "enas")


def test_random_search_at_a_time_budget_picks_by_validation(table, tmp_path, capsys):
    tiny = ["--subset", "20", "--epochs", "1", "--batch-size", "10", "--data", "sample", "--seeds", "1"]
    argv = [
        "bench",
        "nb201",
        "--strategy",
        "random",
        *tiny,
        "--bench-dir",
        str(table.source),
        "-o",
        str(tmp_path / "r"),
    ]
    code, _, err = run(argv, capsys)
    assert code == 2 and "needs a wall-clock budget" in err
    code, out, err = run([*argv, "--time-budget", "4", "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)["records"][0]
    log = [json.loads(line) for line in (tmp_path / "r" / "seed0" / "evaluated.jsonl").read_text().splitlines()]
    assert len(log) >= 1 and sum(e["seconds"] for e in log[:-1]) < 4  # stops once the budget is spent
    best = max(log, key=lambda e: e["val_top1"])
    assert record["arch"] == best["arch"] and record["index"] == table.index_of(best["arch"])

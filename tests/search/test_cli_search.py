"""``edgenas search lightnas|fbnet|gdas|darts|random`` on the shipped sample with a tiny budget."""

from __future__ import annotations

import json

import pytest
from _toy import toy_predictor

from conftest import run_cli as run
from edgenas.spaces import load_specs

TINY = [
    "--data",
    "sample",
    "--set",
    "width=0.25",
    "--epochs",
    "2",
    "--warmup-epochs",
    "1",
    "--batch-size",
    "16",
    "--subset",
    "64",
    "--val-fraction",
    "0.5",
]


def test_lightnas_cli_measures_the_derived_arch(tmp_path, capsys) -> None:
    predictor = toy_predictor().save(tmp_path / "p.pt")
    code, stdout, stderr = run(
        [
            "search",
            "lightnas",
            "--space",
            "mbv2-cifar",
            "--predictor",
            str(predictor),
            "--target-ms",
            "2.5",
            "-o",
            str(tmp_path / "run"),
            "--runtime",
            "ort-cpu",
            "--close-loop",
            "0",
            "--json",
            *TINY,
        ],
        capsys,
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["targets"][0]["target"] == 2.5 and summary["measured"]["mode"] == "measure"
    assert summary["measured"]["median_ms"] > 0 and "within_tolerance" in summary["measured"]
    assert len(summary["measured"]["rounds"]) == 1
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["measured"] == summary["measured"]


def test_fbnet_cli_and_infeasible_target(tmp_path, capsys) -> None:
    predictor = toy_predictor().save(tmp_path / "p.pt")
    code, stdout, stderr = run(
        [
            "search",
            "fbnet",
            "--space",
            "mbv2-cifar",
            "--predictor",
            str(predictor),
            "--target-ms",
            "2.5",
            "--lambda",
            "0.5",
            "-o",
            str(tmp_path / "fb"),
            "--json",
            *TINY,
        ],
        capsys,
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["method"] == "fbnet" and summary["targets"][0]["lambda"] == 0.5
    code, _, stderr = run(
        [
            "search",
            "lightnas",
            "--space",
            "mbv2-cifar",
            "--predictor",
            str(predictor),
            "--target-ms",
            "0.5",
            "-o",
            str(tmp_path / "bad"),
            *TINY,
        ],
        capsys,
    )
    assert code == 2 and "infeasible" in stderr and "range over this space" in stderr
    assert not (tmp_path / "bad" / "trajectory.jsonl").exists()


@pytest.mark.parametrize(
    "removed", [["--refit"], ["--correct-rounds", "3"], ["--calibrate", "8"], ["--settle-steps", "9"]]
)
def test_removed_landing_options_point_to_the_closed_loop(removed, tmp_path, capsys) -> None:
    predictor = toy_predictor().save(tmp_path / "p.pt")
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(predictor), "--target-ms", "2.5"]
    code, _, stderr = run([*argv, "-o", str(tmp_path / "r"), "--runtime", "ort-cpu", *removed, *TINY], capsys)
    assert code == 2 and stderr.count("\n") == 1 and not (tmp_path / "r").exists()
    assert f"No such option: {removed[0]}; this option was removed: --runtime RT lands with --close-loop M" in stderr


@pytest.mark.slow
def test_lightnas_cli_lands_with_the_closed_loop_by_default(tmp_path, capsys, monkeypatch) -> None:
    """--runtime alone lands on T with the closed loop (its default budget); a run calibrated before --calibrate was
    removed resumes with its scaled predictor. The device is simulated (the toy predictor x 1.1)."""
    import edgenas.cli._search_job as cli_search
    from edgenas.hardware.device import SimulatedDevice
    from edgenas.search.calibrate import scale_predictor
    from edgenas.search.landing import DEFAULT_LOOP_BUDGET

    truth = toy_predictor()
    measured: list[str] = []

    def fake_device(landing, space, run, *, energy=False):
        assert landing.runtime == "ort-cpu" and landing.loads == 2 and not energy
        return SimulatedDevice(_recording(measured, space, truth, 1.1))

    monkeypatch.setattr(cli_search, "search_device", fake_device)
    predictor = toy_predictor().save(tmp_path / "p.pt")
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(predictor), "--target-ms", "2.5"]
    on_device = ["--runtime", "ort-cpu", "--loads", "2"]
    code, stdout, stderr = run([*argv, "-o", str(tmp_path / "run"), *on_device, *TINY], capsys)
    assert code == 0, stderr
    assert "closed loop: met" in stdout and "within ±2%" in stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["measured"]["mode"] == "close-loop" and summary["measured"]["within_tolerance"]
    # --loads 2: each measurement is two sessions on the device
    assert 1 <= len(measured) // 2 == summary["closed_loop"]["spent"] <= DEFAULT_LOOP_BUDGET
    # a run directory calibrated by an older edgenas: --resume keeps its scaled predictor
    run_dir = tmp_path / "run"
    scale_predictor(toy_predictor(), 1.1).save(run_dir / "predictor_calibrated.pt")
    code, stdout, stderr = run([*argv, "-o", str(run_dir), "--resume", "--json", *TINY], capsys)
    assert code == 0, stderr
    resumed = json.loads(stdout)
    arch = load_specs(run_dir / "arch.json")[0]
    assert resumed["targets"][0]["predicted"] == pytest.approx(1.1 * float(truth.predict(arch)), rel=1e-5)
    # a second search into the same directory is refused before anything is measured
    measured.clear()
    code, _, stderr = run([*argv, "-o", str(run_dir), *on_device, *TINY], capsys)
    assert code == 2 and "already holds a search" in stderr and not measured


NB201_TINY = ["--space", "nb201", "--set", "channels=4", "--data", "sample", "--epochs", "2", "--warmup-epochs", "1"]
NB201_TINY += ["--batch-size", "16", "--subset", "64", "--val-fraction", "0.5", "--device", "cpu"]


@pytest.mark.parametrize(("strategy", "derivation"), [("gdas", "nonzero"), ("darts", None)])
def test_every_registered_strategy_is_a_search_command(strategy, derivation, tmp_path, capsys) -> None:
    """Accuracy only (no target), on a shallower search network than the deployed one; the derivation rule is the
    strategy's (DARTS: nonzero) unless given."""
    argv = ["search", strategy, *NB201_TINY, "--search-set", "cells_per_stage=1", "-o", str(tmp_path / "r"), "--json"]
    argv += ["--derivation", derivation] if derivation else []
    code, stdout, stderr = run(argv, capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["method"] == strategy and summary["targets"] == []
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["config"]["supernet_options"] == {"cells_per_stage": 1}
    assert config["space_options"]["cells_per_stage"] == 5  # the derived cell is the deployed network's
    # the cells' measured loop (NNI's DARTS loop) without flags; the flag given (--warmup-epochs 1) wins
    loop = {k: config["config"][k] for k in ("alternate", "alpha_lr_schedule", "supernet_init", "warmup_epochs")}
    assert loop == {"alternate": "batch", "alpha_lr_schedule": "constant", "supernet_init": "torch", "warmup_epochs": 1}
    assert str(load_specs(tmp_path / "r" / "arch.json")[0]) == summary["arch"]
    assert summary["derivation"] == "nonzero" and "none" not in summary["arch"]


def test_random_search_command_spends_its_time_budget(tmp_path, capsys) -> None:
    argv = ["search", "random", *NB201_TINY, "--time-budget", "0.5", "-o", str(tmp_path / "r"), "--json"]
    code, stdout, stderr = run(argv, capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["method"] == "random" and summary["evaluated"] >= 1
    code, _, stderr = run(["search", "random", *NB201_TINY, "-o", str(tmp_path / "s")], capsys)
    assert code == 2 and "wall-clock budget" in stderr


def test_the_progress_line_and_total_suit_searches_with_and_without_a_target():
    from edgenas.cli._search_job import step_state, total_steps
    from edgenas.search.engine import SearchConfig
    from edgenas.train import load_dataset

    with_target = {"derived": [4.0123], "lambda": [0.0021], "ce": 2.3, "entropy": 1.6}
    assert step_state(with_target, "ms") == "derived 4.012 ms  lambda +0.0021"
    free = {"derived": [], "lambda": [], "ce": 2.30412, "entropy": 1.60944}
    assert step_state(free, "ms") == "ce 2.304  entropy 1.609"  # not empty 'derived  ms' fields
    assert step_state({**free, "ce": None}, "ms").startswith("ce -")
    images = load_dataset("sample")
    per_epoch = SearchConfig(
        method="gdas", epochs=3, warmup_epochs=1, batch_size=16, train_subset=128, val_fraction=0.25
    )
    per_batch = SearchConfig(**{**per_epoch.__dict__, "alternate": "batch"})
    # 96 weight images -> 6 w steps an epoch; 32 held out -> 2 alpha steps an epoch, or one per w batch per batch
    assert total_steps(per_epoch, images) == 6 * 3 + 2 * 2
    assert total_steps(per_batch, images) == 6 * 3 + 6 * 2


def test_lightnas_cli_closes_the_loop_on_measurements_and_warns_outside_the_data(tmp_path, capsys, monkeypatch):
    """--close-loop measures the result and the neighbours the search prefers until one is within the tolerance;
    every measurement goes into --store; a target outside the predictor's fitted values is warned about."""
    import edgenas.cli._search_job as cli_search
    from edgenas.hardware import MeasurementStore
    from edgenas.hardware.device import SimulatedDevice

    truth = toy_predictor()
    measured: list[str] = []

    def fake_device(landing, space, run, *, energy=False):  # 8% slower than the predictor says
        return SimulatedDevice(_recording(measured, space, truth, 1.08))

    monkeypatch.setattr(cli_search, "search_device", fake_device)
    narrow = toy_predictor()
    narrow.meta.value_range = (3.0, 4.0)  # fitted on archs of 3..4 ms only: 2.5 ms is an extrapolation
    predictor = narrow.save(tmp_path / "p.pt")
    store = tmp_path / "m.sqlite"
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(predictor), "--target-ms", "2.5"]
    loop = ["--runtime", "ort-cpu", "--close-loop", "6", "--store", str(store), "--store-device", "sim"]
    code, stdout, stderr = run([*argv, "-o", str(tmp_path / "run"), *loop, *TINY], capsys)
    assert code == 0, stderr
    assert "lies outside the 3..4 ms the predictor was fitted on" in stderr + stdout
    assert "--near 2.5" in stderr and "closed loop: met" in stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    spent = summary["closed_loop"]["spent"]
    assert 1 <= spent <= 6 and len(measured) == 3 * spent and summary["warnings"]  # 3 loads a measurement
    assert abs(summary["measured"]["error"]) <= 0.02 and summary["measured"]["within_tolerance"]
    assert str(load_specs(tmp_path / "run" / "arch.json")[0]) == summary["closed_loop"]["chosen"]
    with MeasurementStore(store, create=False) as db:
        assert db.count() == len(set(measured))
    code, _, stderr = run([*argv, "-o", str(tmp_path / "x"), "--close-loop", "3", *TINY], capsys)
    assert code == 2 and "--close-loop needs --runtime" in stderr
    code, _, stderr = run([*argv, "-o", str(tmp_path / "y"), "--store", str(store), *TINY], capsys)
    assert code == 2 and "--store and --store-device go with the landing" in stderr
    for landing_off in ([], ["--runtime", "ort-cpu", "--close-loop", "0"]):  # a target in the landing needs one
        landing = ["--budget-term", "landing", *landing_off]
        code, _, stderr = run([*argv, "-o", str(tmp_path / "z"), *landing, *TINY], capsys)
        assert code == 2 and "the closed loop meets T" in stderr and not (tmp_path / "z").exists()


def test_surgenas_on_cells_gets_the_cells_loop_and_derives_by_dartss_rule(tmp_path, capsys) -> None:
    """The thesis' settings over the nb201 space's loop: the identity once per cell, PyTorch's init, affine-free
    cells; the derived cell has no `none` edge (SurgeNAS derives by DARTS' rule on cells)."""
    argv = ["search", "surgenas", "--space", "nb201", "--set", "channels=4", "--data", "sample", "--epochs", "2"]
    argv += ["--batch-size", "16", "--subset", "64", "--device", "cpu", "--search-set", "cells_per_stage=1"]
    code, stdout, stderr = run([*argv, "-o", str(tmp_path / "r"), "--json"], capsys)
    assert code == 0, stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert (config["identity_scope"], config["supernet_init"], config["search_bn_affine"]) == ("block", "torch", False)
    assert (config["w_lr"], config["w_lr_schedule"], config["identity_phi"]) == (0.1, "cosine", 2.0)  # the thesis'
    summary = json.loads(stdout)
    assert summary["derivation"] == "nonzero" and "none" not in summary["arch"]


def test_a_refused_search_prints_its_error_and_no_warning_first(tmp_path, capsys) -> None:
    """Check first, warn after: a target outside the predictor's data that is also out of reach, or a run directory
    that holds a search, gets the one error line, not the data-range warning before it."""
    predictor = toy_predictor().save(tmp_path / "p.pt")  # fitted on 1..10 ms; the toy space reaches 1.21 ms at best
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(predictor), *TINY]
    code, _, err = run([*argv, "--target-ms", "0.5", "-o", str(tmp_path / "a")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "warning" not in err, err
    from dataclasses import replace

    narrow = toy_predictor()
    narrow.meta = replace(narrow.meta, value_range=(2.0, 3.0))  # fitted on 2..3 ms: 4 ms is reachable but outside
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(narrow.save(tmp_path / "n.pt")), *TINY]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "trajectory.jsonl").write_text("")
    code, _, err = run([*argv, "--target-ms", "4", "-o", str(tmp_path / "b")], capsys)
    assert code == 2 and "already holds a search" in err and "warning" not in err, err


def _recording(measured: list[str], space, truth, factor: float):
    """The simulated device's latency: ``factor`` x the truth; each arch the loop measures is recorded (not the
    reference timed beside each: issue 30)."""
    from edgenas.hardware.reference import reference_arch

    reference = str(reference_arch(space))

    def latency(arch) -> float:
        if str(arch) != reference:
            measured.append(str(arch))
        return factor * float(truth.predict(arch))

    return latency

"""``edgenas search lightnas|fbnet`` on the shipped sample with a tiny budget."""

from __future__ import annotations

import json

from _toy import toy_predictor

from conftest import run_cli as run

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
            "--json",
            *TINY,
        ],
        capsys,
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["targets"][0]["target"] == 2.5
    assert summary["measured"]["median_ms"] > 0 and "within_tolerance" in summary["measured"]
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


def test_refit_needs_a_store(tmp_path, capsys) -> None:
    predictor = toy_predictor().save(tmp_path / "p.pt")
    code, _, stderr = run(
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
            str(tmp_path / "r"),
            "--refit",
            "--runtime",
            "ort-cpu",
            *TINY,
        ],
        capsys,
    )
    assert code == 2 and "--refit needs --store" in stderr

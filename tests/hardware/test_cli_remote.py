"""`--remote CMD`: the commands that measure run on a device through the stand-alone runner, or refuse in one line."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import run_cli as run
from edgenas.hardware import MeasurementStore
from edgenas.spaces import get_space

RUNNER_HERE = f"{sys.executable} {{runner}} {{dir}}"
QUICK = ["--warmup", "1", "--repeats", "5"]


@pytest.fixture(scope="module")
def arch():
    return str(get_space("mbv2-cifar", width=0.25).sample(seed=2, n=1)[0])


def test_measure_through_the_runner(arch, capsys):
    code, out, err = run(
        ["measure", arch, "--space", "mbv2-cifar", "--set", "width=0.25", "--remote", RUNNER_HERE, *QUICK, "--json"],
        capsys,
    )
    assert code == 0, err
    (row,) = json.loads(out)["measurements"]
    assert row["runtime"] == "ort-cpu" and row["n"] == 5 and 0 < row["median_ms"] < 1000
    assert row["energy_mJ"] is None and "remote" in row["energy_note"]


def test_profile_through_the_runner_files_the_rows(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    argv = ["profile", "mbv2-cifar", "--set", "width=0.25", "--n", "3", "--store", str(store), "--remote", RUNNER_HERE]
    code, out, err = run([*argv, "--store-device", "pi", *QUICK, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["measured"] == 3 and json.loads(out)["store_device"] == "pi"
    with MeasurementStore(store, create=False) as db:
        assert {(r["device"], r["runtime"]) for r in db.rows()} == {("pi", "ort-cpu")}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--remote", "ssh pi run"], "--remote must contain {dir}"),
        (["--remote", RUNNER_HERE, "--runtime", "torch-cpu"], "drop --runtime torch-cpu"),
        (["--remote", RUNNER_HERE, "--energy"], "latency only"),
    ],
)
def test_a_remote_it_cannot_use_is_refused_in_one_line(arch, extra, message, capsys):
    code, _, err = run(["measure", arch, "--space", "mbv2-cifar", "--set", "width=0.25", *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_search_landing_through_a_remote_store_needs_its_name(tmp_path, capsys):
    predictor = tmp_path / "p.pt"
    predictor.write_bytes(b"")  # refused before the predictor is read
    argv = ["search", "lightnas", "--space", "mbv2-cifar", "--predictor", str(predictor), "--target-ms", "2.5"]
    argv += ["-o", str(tmp_path / "r"), "--remote", RUNNER_HERE, "--store", str(tmp_path / "s.sqlite")]
    code, _, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "--store-device" in err and not (tmp_path / "r").exists()


def test_the_cli_names_the_runners_runtime_without_importing_it():
    from edgenas.cli._device import RUNNER_RUNTIME
    from edgenas.hardware.remote import RUNNER_RUNTIME as RUNNERS

    assert RUNNER_RUNTIME == RUNNERS

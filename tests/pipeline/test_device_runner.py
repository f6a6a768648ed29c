"""The stand-alone device runner: runs with only onnxruntime and numpy, agrees with `profile` on this machine, and
its results come back into the store; a search's device-in-the-loop measurement goes through a command template."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import run_cli as run
from edgenas.errors import MeasurementError
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.device import latency_fn
from edgenas.hardware.protocol import DEFAULT_PROTOCOL
from edgenas.hardware.remote import RemoteDevice, export_archs, read_results, run_remote, runner_path
from edgenas.spaces import get_space


def _bare_python(root: Path) -> Path:
    """A virtual environment whose only packages are onnxruntime and numpy (linked from this one: no network)."""
    import numpy
    import onnxruntime

    env = root / "bare"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    for module in (numpy, onnxruntime):
        package = Path(module.__file__).parent
        (site / package.name).symlink_to(package)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            (site / libs.name).symlink_to(libs)
    return python


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    space = get_space("mbv2-cifar", width=0.25)
    specs = space.sample(seed=3, n=4)
    folder = tmp_path_factory.mktemp("device") / "export"
    export_archs(specs, folder, RuntimeOptions(batch=1, resolution=32, threads=1))
    return folder, specs


@pytest.mark.slow
def test_runner_in_a_bare_environment_matches_profile(tmp_path, capsys, exported):
    folder, specs = exported
    python = _bare_python(tmp_path)
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    assert probe.returncode != 0, "the bare environment must not see torch"
    subprocess.run([python, str(runner_path()), str(folder)], check=True, capture_output=True, timeout=600)
    results = json.loads((folder / "results.json").read_text())
    assert len(results["rows"]) == 4 and results["fingerprint"]["onnxruntime"]

    store = tmp_path / "s.sqlite"
    code, out, err = run(
        ["store", "import", str(folder / "results.json"), "--store", str(store), "--store-device", "pi", "--json"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["added"] == 4
    code, _, err = run(
        [
            "profile",
            "mbv2-cifar",
            "--set",
            "width=0.25",
            "--n",
            "4",
            "--seed",
            "3",
            "--store",
            str(store),
            "--store-device",
            "here",
            "--warmup",
            "10",
            "--repeats",
            "50",
        ],
        capsys,
    )
    assert code == 0, err
    # The runner and `profile` must apply one protocol. That is checked on what each recorded (runtime, batch,
    # resolution, threads, timed repeats), never by comparing two wall-clock timings: on a shared CPU two loads
    # minutes apart differ by tens of percent (CI saw 1.35x on one arch), so such a test fails by chance.
    with MeasurementStore(store, create=False) as db:
        rows = list(db.rows())
    by_device = {d: {(r["space_hash"], r["arch"]): r for r in rows if r["device"] == d} for d in ("pi", "here")}
    assert set(by_device["pi"]) == set(by_device["here"]) == {(s.space_hash, str(s)) for s in specs}
    protocol_fields = ("runtime", "metric", "batch", "resolution", "threads", "n")
    for key, device_row in by_device["pi"].items():
        here_row = by_device["here"][key]
        assert {f: device_row[f] for f in protocol_fields} == {f: here_row[f] for f in protocol_fields}
        assert device_row["n"] == DEFAULT_PROTOCOL.repeats
        assert 0 < device_row["min"] <= device_row["value"] and device_row["iqr"] >= 0


def test_results_read_back_exactly(exported):
    folder, specs = exported
    rows = run_remote(f"{sys.executable} {{runner}} {{dir}}", folder)
    results = read_results(folder)
    assert [str(s) for s, _ in results.rows] == [str(s) for s in specs]
    assert [r["median_ms"] for _, r in results.rows] == [r["median_ms"] for r in rows]
    assert results.key.runtime == "ort-cpu" and results.key.resolution == 32


def test_remote_device_and_failures(tmp_path, exported):
    _, specs = exported
    options = RuntimeOptions(batch=1, resolution=32, threads=1)
    measure = latency_fn(RemoteDevice(f"{sys.executable} {{runner}} {{dir}}", options, tmp_path / "work"))
    assert 0 < measure(specs[0]) < 1000
    with pytest.raises(MeasurementError, match="failed"):
        latency_fn(RemoteDevice("false {dir}", options, tmp_path / "w2"))(specs[0])
    with pytest.raises(MeasurementError, match="no results"):
        latency_fn(RemoteDevice("true {dir}", options, tmp_path / "w3"))(specs[0])


def test_profile_export_writes_models_and_manifest(tmp_path, capsys):
    folder = tmp_path / "to-device"
    code, _, err = run(
        ["profile", "mbv2-cifar", "--set", "width=0.25", "--n", "3", "--export", str(folder), "--json"], capsys
    )
    assert code == 0, err
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["models"]) == 3 and all((folder / m["file"]).is_file() for m in manifest["models"])
    assert (folder / "runner.py").read_text() == runner_path().read_text()


@pytest.mark.slow
def test_a_run_measures_through_the_remote_command(tmp_path):
    """device.remote: every measurement of the run goes through the runner (here a local command)."""
    from _pipeline import tiny_raw

    from edgenas.pipeline import config_from_dict, read_run, run_pipeline

    raw = tiny_raw(
        device={"runtime": "ort-cpu", "remote": f"{sys.executable} {{runner}} {{dir}}"},
        budget={"latency_quantile": 0.5},  # real, noisy measurements of 8 archs: T well inside their range
        profile={"n": 8, "repeats": 5},
        search={"calibrate": 1, "correct_rounds": 0},
        train={"epochs": 1},
        # its 21 measurements go through the same `measure_models` as the check's, asserted below
        compress={"enabled": False},
    )
    run_pipeline(config_from_dict(raw), tmp_path / "run")
    stages = {s["name"]: s for s in read_run(tmp_path / "run")["stages"]}
    profile_dir = tmp_path / "run" / "stages" / stages["profile"]["dir"]
    assert len(json.loads((profile_dir / "export" / "results.json").read_text())["rows"]) == 8
    with MeasurementStore(profile_dir / "store.sqlite", create=False) as db:
        (device,) = db.devices()
    assert device["source"] == "edgenas runner.py" and stages["profile"]["device"] == device["name"]
    check_dir = tmp_path / "run" / "stages" / stages["check"]["dir"]
    (results,) = (check_dir / "measure").glob("measure-*/results.json")
    row = json.loads(results.read_text())["rows"][0]
    # the runner timed the profile's reference beside the deployed net: the verdict reads it at the nominal level
    levels, nominal = stages["check"]["levels"], stages["profile"]["level"]["nominal_ms"]
    assert levels["ms_now"] == row["median_ms"] and levels["level_now_ms"] == row["reference_ms"]
    assert stages["check"]["measured_ms"] == pytest.approx(row["relative"] * nominal) == levels["nominal_ms"]
    assert stages["profile"]["level"]["sessions"] == 8  # one session a model: the runner times it beside the reference

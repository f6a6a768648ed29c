"""One device: a local runtime and a remote command measure archs and modules alike, through one interface."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from edgenas.errors import EdgeNASError, MeasurementError
from edgenas.hardware import MeasurementStore, Protocol, RuntimeOptions
from edgenas.hardware.device import Device, LocalDevice, latency_fn, open_device
from edgenas.hardware.remote import RemoteDevice
from edgenas.spaces import get_space

QUICK = Protocol(warmup=1, repeats=5)
OPTIONS = RuntimeOptions(batch=1, resolution=32, threads=1)
RUNNER_HERE = f"{sys.executable} {{runner}} {{dir}}"


@pytest.fixture(scope="module")
def specs():
    return get_space("mbv2-cifar", width=0.25).sample(seed=5, n=2)


def _check_row(m, label, loads, runtime="ort-cpu"):
    assert m.label == label and m.loads == loads and m.runtime == runtime
    assert (m.batch, m.threads) == (1, 1)
    assert 0 < m.median_ms < 1000 and m.iqr_ms >= 0 and m.rel_iqr == pytest.approx(m.iqr_ms / m.median_ms)


def test_a_local_device_measures_archs_and_modules(specs):
    device = open_device("ort-cpu", OPTIONS, protocol=QUICK)
    assert isinstance(device, LocalDevice) and isinstance(device, Device) and device.name == "ort-cpu"
    rows = device.measure(specs, loads=2)
    assert len(rows) == 2
    for spec, row in zip(specs, rows, strict=True):
        _check_row(row, str(spec), 2)
        assert row.energy_mj is None
    (row,) = device.measure([nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())], labels=["conv"])
    _check_row(row, "conv", 1)
    assert latency_fn(device)(specs[0]) > 0


def test_a_remote_device_runs_the_command_once_per_load(tmp_path, specs):
    device = open_device("ort-cpu", OPTIONS, remote=RUNNER_HERE, workdir=tmp_path, protocol=QUICK)
    assert isinstance(device, RemoteDevice) and isinstance(device, Device) and device.name.startswith("remote: ")
    rows = device.measure(specs[:1], loads=2)
    _check_row(rows[0], str(specs[0]), 2)
    first, second = rows[0].per_load  # two runner processes, each timing the model anew (not a resumed folder)
    assert first.n == second.n == QUICK.repeats and first != second
    (folder,) = tmp_path.glob("measure-*")
    assert (folder / "results.json").is_file() and (folder / "model_0000.onnx").is_file()


def test_both_devices_profile_into_a_store(tmp_path, specs):
    here = open_device("ort-cpu", OPTIONS, protocol=QUICK)
    there = open_device("ort-cpu", OPTIONS, remote=RUNNER_HERE, workdir=tmp_path / "remote", protocol=QUICK)
    seen: list[str] = []
    with MeasurementStore(tmp_path / "s.sqlite") as db:
        a = here.profile(specs, db, device_name="here", on_progress=lambda d, t, m: seen.append(m))
        b = there.profile(specs, db, device_name="there")
        again = there.profile(specs[:1], db, device_name="there")  # another set of archs: another export folder
        rows = list(db.rows())
    assert (a.device, b.device) == ("here", "there") and (a.measured, b.measured, again.skipped) == (2, 2, 1)
    assert a.key == b.key == here.key() == there.key() and a.key.resolution == 32 and a.key.runtime == "ort-cpu"
    assert sorted((r["device"], r["arch"]) for r in rows) == sorted(
        (d, str(s)) for d in ("here", "there") for s in specs
    )
    assert len(seen) == 2 and seen[-1].startswith("last ")
    assert sorted(p.name for p in (tmp_path / "remote").glob("export*")) == [
        "export",
        sorted(p.name for p in (tmp_path / "remote").glob("export-*"))[0],
    ]
    assert here.store_name() and there.store_name() is None


def test_bad_requests_get_one_clear_error(tmp_path, specs):
    device = LocalDevice("ort-cpu", OPTIONS, QUICK)
    with pytest.raises(MeasurementError, match="loads"):
        device.measure(specs, loads=0)
    with pytest.raises(MeasurementError, match="nothing to measure"):
        device.measure([])
    with pytest.raises(MeasurementError, match="labels"):
        device.measure(specs, labels=["one"])
    with pytest.raises(EdgeNASError, match="unknown runtime"):
        open_device("no-such-runtime", OPTIONS)
    with pytest.raises(MeasurementError, match="work folder"):
        open_device("ort-cpu", OPTIONS, remote=RUNNER_HERE)
    with pytest.raises(MeasurementError, match=r"\{dir\}"):
        open_device("ort-cpu", OPTIONS, remote="ssh pi run", workdir=tmp_path)
    with pytest.raises(MeasurementError, match="latency only"):
        open_device("ort-cpu", OPTIONS, remote=RUNNER_HERE, workdir=tmp_path, energy=True)
    with pytest.raises(MeasurementError, match="failed"):
        RemoteDevice("false {dir}", OPTIONS, tmp_path / "w").measure(specs[:1])


def test_a_module_is_measured_at_the_device_input(specs):
    """A module has no space: it is fed the device's (batch, channels, resolution)."""
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape))
            return x.mean(dim=(2, 3))

    LocalDevice("torch-cpu", RuntimeOptions(batch=2, resolution=20, threads=1), QUICK).measure([Probe()])
    assert seen and set(seen) == {(2, 3, 20, 20)}

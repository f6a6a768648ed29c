"""Comfort Zone scaling of a found network (``edgenas scale``) against a fake device with a known zone."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli as run
from edgenas.compress.comfort import scale_up, widened
from edgenas.errors import MeasurementError
from edgenas.hardware import RuntimeOptions
from edgenas.hardware.device import Measurement
from edgenas.spaces import get_space, load_specs, space_of


def _stats(ms: float, rel_iqr: float = 0.01) -> Measurement:
    return Measurement("arch", median_ms=ms, iqr_ms=ms * rel_iqr, loads=1, runtime="fake", batch=1, threads=1)


class FakeDevice:
    """A :class:`edgenas.hardware.device.Device` whose measurements are a function of the archs measured together."""

    name, options = "fake", RuntimeOptions()

    def __init__(self, measure):
        self.measure_all = measure

    def measure(self, items, *, loads=1, labels=()):
        return self.measure_all(items)


def _device(zone_until: float, base_ms: float = 2.0, slope: float = 0.8):
    """Flat latency up to ``zone_until`` times the base width, then growing with the width; records each call."""
    calls: list[list[float]] = []

    def latency(spec) -> float:
        scale = space_of(spec).config.width / 0.25
        return base_ms if scale <= zone_until + 1e-9 else base_ms * (1 + slope * (scale - zone_until))

    def measure(specs):
        calls.append([space_of(s).config.width for s in specs])
        return [_stats(latency(s)) for s in specs]

    return FakeDevice(measure), calls


def _spec():
    return get_space("mbv2-cifar", width=0.25).sample(seed=0)[0]


def test_scale_keeps_the_widest_network_inside_the_zone() -> None:
    spec = _spec()
    measure, calls = _device(zone_until=1.75)
    report = scale_up(spec, measure, step=0.25, max_scale=3.0)
    assert report.has_zone and report.scale == 1.75
    assert space_of(report.kept).config.width == pytest.approx(0.25 * 1.75)
    assert report.kept.choices == spec.choices
    assert [s["scale"] for s in report.steps] == [1.25, 1.5, 1.75, 2.0]  # stops at the first step out of the band
    assert [s["within_band"] for s in report.steps] == [True, True, True, False]
    assert all(c[0] == 0.25 for c in calls)  # every step measured the original with the candidate
    assert report.steps[0]["mult_adds_M"] > 0


def test_scale_without_a_zone_keeps_the_original() -> None:
    spec = _spec()
    measure, _ = _device(zone_until=1.0)
    report = scale_up(spec, measure)
    assert not report.has_zone and report.scale == 1.0 and report.kept == spec
    assert len(report.steps) == 1 and not report.steps[0]["within_band"]


def test_scale_band_follows_the_noise_of_the_original() -> None:
    spec = _spec()

    def noisy(specs):  # the original's relative IQR is 10%: a 15% slower candidate is still noise
        return [_stats(2.0, 0.10), _stats(2.3)]

    report = scale_up(spec, FakeDevice(noisy), step=0.5, max_scale=2.0)
    assert report.band == pytest.approx(0.2) and report.scale == 2.0


def test_scale_refuses_bad_steps_and_spaces_without_width() -> None:
    with pytest.raises(MeasurementError):
        scale_up(_spec(), _device(2.0)[0], step=0.0)
    with pytest.raises(MeasurementError):
        scale_up(_spec(), _device(2.0)[0], max_scale=1.0)
    assert space_of(widened(_spec(), 2.0)).config.width == 0.5


def test_scale_command_writes_the_kept_spec(tmp_path, capsys) -> None:
    spec = _spec()
    out = tmp_path / "scaled.json"
    code, stdout, stderr = run(
        [
            "scale",
            str(spec),
            "--space",
            "mbv2-cifar",
            "--set",
            "width=0.25",
            "-o",
            str(out),
            "--max-scale",
            "1.5",
            "--step",
            "0.5",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--json",
        ],
        capsys,
    )
    assert code == 0, stderr
    payload = json.loads(stdout)
    assert payload["scale"] in (1.0, 1.5) and len(payload["steps"]) == 1
    kept = load_specs(out)[0]
    assert kept.choices == spec.choices
    assert space_of(kept).config.width == pytest.approx(0.25 * payload["scale"])  # whatever this CPU says

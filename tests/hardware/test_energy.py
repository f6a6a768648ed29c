"""Energy counters: the 'not available' path, RAPL reading with wrap-around, and energy per run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgenas.hardware.energy import EnergyMeter, RaplMeter, energy_meter, measure_energy


def test_no_rapl_domain_says_why(tmp_path):
    meter, reason = energy_meter("cpu", rapl_root=tmp_path)
    assert meter is None and "no RAPL domain" in reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_no_gpu_counter_says_why():
    meter, reason = energy_meter("cuda")
    assert meter is None and reason


def fake_rapl(root: Path, value: int, max_range: int = 1000) -> Path:
    domain = root / "intel-rapl:0"
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "energy_uj").write_text(str(value))
    (domain / "max_energy_range_uj").write_text(str(max_range))
    return domain


def test_rapl_counter_handles_wrap_around(tmp_path):
    domain = fake_rapl(tmp_path, 900)
    meter, reason = energy_meter("cpu", rapl_root=tmp_path)
    assert isinstance(meter, RaplMeter) and "intel-rapl:0" in reason
    (domain / "energy_uj").write_text("950")
    assert meter.read_mj() == pytest.approx(0.05)
    (domain / "energy_uj").write_text("50")  # wrapped: 950 -> 1000 -> 50 = 100 uJ more
    assert meter.read_mj() == pytest.approx(0.15)


def test_unreadable_rapl_counter_says_why(tmp_path):
    domain = fake_rapl(tmp_path, 1)
    (domain / "energy_uj").write_text("not a number")
    meter, reason = energy_meter("cpu", rapl_root=tmp_path)
    assert meter is None and "not readable" in reason


class CountingMeter(EnergyMeter):
    """Adds 2 mJ per run of the network."""

    def __init__(self):
        self.total = 0.0

    def read_mj(self):
        return self.total


def test_energy_per_run():
    meter = CountingMeter()

    def run():
        meter.total += 2.0
        return 0.0

    stats = measure_energy(run, meter, min_seconds=0.0, min_runs=25)
    assert stats.runs == 25 and stats.mj_per_run == pytest.approx(2.0)

"""The quiet-machine check counts other processes' CPU time, not the run's own.

The arithmetic and the warning are tested on given counters: a test that needed the machine to be quiet (or another
process to get a share of it) would fail by chance on a shared CI runner."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgenas.pipeline import _device
from edgenas.pipeline._device import load_warning, machine_busy_s, others_load, others_share, own_cpu_s


def test_own_work_is_not_counted():
    # 1.5 busy core-seconds over a second, 1.0 of them this process's: others kept half a core busy
    assert others_share(busy_s=1.5, own_s=1.0, elapsed_s=1.0) == pytest.approx(0.5)
    assert others_share(busy_s=2.0, own_s=2.0, elapsed_s=0.5) == 0.0
    # the counters tick at different granularities: own time may exceed the machine's by a tick, never below 0
    assert others_share(busy_s=0.99, own_s=1.0, elapsed_s=1.0) == 0.0


def test_busy_others_warn_per_core(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(_device, "others_load", lambda window_s=1.0: 0.9 * cores)
    assert "0.90 of each core" in (load_warning(0.5) or "")
    assert load_warning(0.95) is None
    monkeypatch.setattr(_device, "others_load", lambda window_s=1.0: None)  # no /proc/stat: no warning
    assert load_warning(0.0) is None


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs /proc/stat")
def test_counters_read_this_machine():
    """Own work shows in both counters (the machine's busy time includes ours); the load is within the cores."""
    busy0, own0 = machine_busy_s(), own_cpu_s()
    stop = time.process_time() + 0.2
    while time.process_time() < stop:  # 0.2 s of our own CPU, however loaded the machine is
        pass
    own = own_cpu_s() - own0
    assert own >= 0.15  # os.times ticks in 10 ms
    assert machine_busy_s() - busy0 >= 0.5 * own  # the two clocks tick differently; ours is part of the machine's
    load = others_load(0.05)
    assert load is not None and 0.0 <= load <= (os.cpu_count() or 1) + 0.5

"""The quiet-machine check counts other processes' CPU time, not the run's own."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgenas.pipeline._device import load_warning, others_load

pytestmark = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs /proc/stat")


def test_another_process_is_seen():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert others_load(0.5) > 0.6
        assert "busy" in load_warning(0.0)
    finally:
        busy.kill()


def test_own_work_is_not_counted():
    stop = time.monotonic() + 1.0

    def spin() -> None:
        while time.monotonic() < stop:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    load = others_load(0.5)
    worker.join()
    assert load < 0.4

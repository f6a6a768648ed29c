"""Child process of ``test_run_killed``: runs ``edgenas run`` through the CLI's own entry point on the cost-model
device and sends itself SIGKILL at a given moment of a given stage.

    python _killed_run.py THREADS STAGE N -- edgenas-arguments...

THREADS is the parent's torch thread count (the figures of a run depend on it in the last digits); N = 0 kills
when STAGE starts, N > 0 at its N-th progress event; ``none`` as STAGE runs to the end. SIGKILL ends the process
where it stands (no ``finally``, no flush, no atexit), as the kernel does on an out-of-memory kill.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _kill_at(stage: str, nth: int) -> None:
    import edgenas.cli.pipeline as cli_pipeline

    display = cli_pipeline._Display
    start, update = display.stage_start, display.progress_update
    state: dict[str, Any] = {"stage": None, "events": 0}

    def stage_start(self: Any, name: str, key: str, reused: bool) -> None:
        state["stage"], state["events"] = name, 0
        if name == stage and nth == 0 and not reused:
            os.kill(os.getpid(), signal.SIGKILL)
        start(self, name, key, reused)

    def progress_update(self: Any, done: int, total: int | None, text: str) -> None:
        state["events"] += 1
        if state["stage"] == stage and state["events"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        update(self, done, total, text)

    display.stage_start, display.progress_update = stage_start, progress_update


def main() -> None:
    import torch
    from _pipeline import CostRuntime

    from edgenas.cli import main as edgenas
    from edgenas.hardware.runtimes import RUNTIMES

    threads, stage, nth, separator, *argv = sys.argv[1:]
    torch.set_num_threads(int(threads))
    RUNTIMES[CostRuntime.name] = CostRuntime
    assert separator == "--", sys.argv
    _kill_at(stage, int(nth))
    edgenas(argv)


if __name__ == "__main__":
    main()

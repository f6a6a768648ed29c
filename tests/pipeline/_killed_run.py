"""Child process of ``test_run_killed``: a fork server that runs ``edgenas run`` through the CLI's own entry point on
the cost-model device, each time in a forked process that sends itself SIGKILL at a given moment of a given stage.

    python _killed_run.py THREADS

It imports torch and edgenas once, then reads one JSON request per line on stdin — ``{"stage": S, "nth": N, "argv":
[...], "log": PATH}`` — forks a process that runs ``edgenas ARGV`` with its stdout and stderr in PATH, and answers
``{"returncode": R}`` on stdout (R < 0: killed by signal -R, as :mod:`subprocess` reports it). N = 0 kills when
stage S starts, N > 0 at its N-th progress event; ``none`` as S runs to the end. SIGKILL ends the process where it
stands (no ``finally``, no flush, no atexit), as the kernel does on an out-of-memory kill. Forking saves each run the
seconds of importing torch; nothing computes with torch before the fork, so no thread pool is copied half-made.

THREADS is the parent's torch thread count (the figures of a run depend on it in the last digits).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: A forked run still going after this long is stopped (SIGALRM) rather than hanging the suite (s).
RUN_LIMIT_S = 600


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


def _child(request: dict[str, Any]) -> None:
    """The forked run: its output in the request's log file; never returns."""
    from edgenas.cli import main as edgenas

    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    signal.alarm(RUN_LIMIT_S)
    code = 1
    try:
        _kill_at(request["stage"], int(request["nth"]))
        edgenas(request["argv"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main() -> None:
    import torch
    from _pipeline import CostRuntime

    import edgenas.cli.pipeline
    import edgenas.pipeline.runner
    import edgenas.report  # noqa: F401
    from edgenas.hardware.runtimes import RUNTIMES

    torch.set_num_threads(int(sys.argv[1]))
    RUNTIMES[CostRuntime.name] = CostRuntime
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": _returncode(status)}), flush=True)


if __name__ == "__main__":
    main()

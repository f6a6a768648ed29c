"""Data-parallel stages through ``torchrun``: the pipeline stays one process and launches the stage's job file
(:mod:`edgenas.jobs`: ``edgenas job FILE`` on every rank) on ``nproc`` local processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgenas.errors import EdgeNASError


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``torchrun --standalone --nproc-per-node N -m edgenas ARGV --json`` with this environment's torchrun."""
    runner = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return [runner, "--standalone", "--nproc-per-node", str(nproc), "-m", "edgenas", *argv, "--json"]


def launch(nproc: int, argv: list[str]) -> dict[str, Any]:
    """Run ``edgenas ARGV`` on ``nproc`` processes and return rank 0's JSON result (the command runs with ``--json``,
    so without progress bars; its error line comes back in the exception).

    Raises:
        EdgeNASError: the command failed (its last error line is in the message).
    """
    command = torchrun_command(nproc, argv)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line.lower()]
        raise EdgeNASError(
            f"torchrun on {nproc} processes failed (exit {done.returncode}): {' '.join(argv[:2])}: "
            f"{(errors or ['no output'])[-1].strip()}"
        )
    return json.loads(lines[-1])

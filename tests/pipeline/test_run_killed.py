"""A whole ``edgenas run`` killed by SIGKILL inside every stage in turn, each time resumed with ``--resume``: the
finished stages are reused, the interrupted one is continued, and the final record equals an uninterrupted run's.

The kills are real (the child process sends itself SIGKILL at a chosen progress event, so the moment is the same on
every machine); the device is the deterministic cost model, so equal figures are a fair demand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _pipeline import tiny_raw
from test_run_resume import ORDER, _figures

from edgenas.pipeline import read_run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("finished-run")]
CHILD = Path(__file__).with_name("_killed_run.py")
#: Where each stage is killed: at a progress event inside it (the tiny run reports profile 12, predictor 1, search
#: 17, train 8, baseline 9, compress 24, check 1 events). The two stages that report none (channels, export) are
#: not killed at their start: that is what every kill before them already tests (the next run starts there).
KILLS = (
    ("profile", 6),
    ("predictor", 1),
    ("search", 12),
    ("train", 4),
    ("baseline", 4),
    ("compress", 12),
    ("check", 1),
)
SIGKILLED = -9


def _toml(raw: dict) -> str:
    """The tiny run as a TOML file (top-level scalars, one table per section, inline tables for nested options)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in raw.items() if not isinstance(value, dict)]
    for section, values in ((k, v) for k, v in raw.items() if isinstance(v, dict)):
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                value = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
            else:
                value = json.dumps(value)
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


class _ForkServer:
    """``_killed_run.py``: imports torch and edgenas once and forks a process per ``edgenas run``."""

    def __init__(self, logs: Path) -> None:
        import torch

        threads = str(torch.get_num_threads())  # as the reference run's process: the figures agree to the last digit
        self.logs, self.runs = logs, 0
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), threads], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, config: Path, run: Path, stage: str, nth: int, resume: bool) -> tuple[int, str]:
        """The forked run's exit status (< 0: killed by that signal) and its output."""
        self.runs += 1
        log = self.logs / f"run{self.runs}.log"
        argv = ["run", str(config), "-o", str(run), *(["--resume"] if resume else [])]
        request = {"stage": stage, "nth": nth, "argv": argv, "log": str(log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the fork server died: {self.proc.wait()}"
        return json.loads(answer)["returncode"], log.read_text()[-2000:]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def test_sigkill_inside_every_stage_then_resume(tmp_path, finished_run):
    config, run = tmp_path / "tiny.toml", tmp_path / "run"
    config.write_text(_toml(tiny_raw()), encoding="utf-8")
    server = _ForkServer(tmp_path)
    try:
        for number, (stage, nth) in enumerate(KILLS):
            code, output = server.run(config, run, stage, nth, resume=number > 0)
            assert code == SIGKILLED, f"not killed in {stage}: {code}\n{output}"
            assert (run / "report.html").is_file()  # written at the start and after every finished stage
            finished = [h["name"] for h in read_run(run).get("history", []) if not h["reused"]]
            assert finished == ORDER[: ORDER.index(stage)], f"killed in {stage}, finished so far: {finished}"
        code, output = server.run(config, run, "none", 0, resume=True)
    finally:
        server.close()
    assert code == 0, output
    ran = [h["name"] for h in read_run(run)["history"] if not h["reused"]]
    assert ran == ORDER, f"each stage runs to its end exactly once: {ran}"
    assert _figures(run) == _figures(finished_run)

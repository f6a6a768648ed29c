"""torchrun with 2 Gloo processes on the CPU computes what one process computes with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgenas.train import load_checkpoint

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
COMMON = [
    "train",
    ARCH,
    "--space",
    "nb201",
    "--set",
    "channels=4",
    "--set",
    "cells_per_stage=1",
    "--data",
    "sample",
    "--subset",
    "96",
    "--test-subset",
    "20",
    "--batch-size",
    "16",
    "--lr",
    # a small step keeps the training dynamics stable: float32 sums in another order (~1e-7) then stay ~1e-7 instead
    # of being amplified step after step (benchmarks/ddp_cpu.py shows both regimes)
    "0.01",
    "--epochs",
    "1",
    "--log-every",
    "1",
    "--device",
    "cpu",
    "--json",
]


def step_losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "step"]


def run_cli(args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False, **kwargs)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    single = run_cli([sys.executable, "-m", "edgenas", *COMMON, "-o", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr
    double = run_cli(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "edgenas", *COMMON, "-o", str(tmp_path / "two")]
    )
    assert double.returncode == 0, double.stderr[-2000:]
    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert len(one) == len(two) == 6
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-5
    assert json.loads(double.stdout)["final"]["test_n"] == 20  # only rank 0 printed, one JSON object
    a = load_checkpoint(tmp_path / "one" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "model.pt")["model"]
    assert a.keys() == b.keys()  # the DDP run saves a plain network (BatchNorm2d, no "module." prefix)
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(tmp_path):
    args = [sys.executable, "-m", "edgenas", *COMMON, "--epochs", "2", "--checkpoint-every", "2", "--deterministic"]
    straight = run_cli([*args, "-o", str(tmp_path / "straight")])
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [*args, "-o", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and len(step_losses(run)) >= 7:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (run / "model.pt").is_file():
        pytest.skip("the run finished before it could be killed")
    resumed = run_cli([*args, "-o", str(run), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "straight" / "model.pt")["model"]
    b = load_checkpoint(run / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert step_losses(run) == step_losses(tmp_path / "straight")

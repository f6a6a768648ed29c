"""Issue 31 §1: a trained starting point for Domino — torchvision MobileNetV2 x1.0 on full CIFAR-10 at 32 px.

The network is trained with ``edgenas train`` itself (a user's command, resumable: a killed run continues from its
last epoch checkpoint with ``--resume``), so its ``model.pt`` is an edgenas model file (recipe + state dict) that
``edgenas compress domino --model runs/bench-domino/start/mbv2`` and ``compress.model`` in ``edgenas run`` read.

Recipe (CIFAR-style SGD; sized to what a 2-core CPU trains in about an hour: ~170 s an epoch at
~320 images/s): 20 epochs, batch 128, lr 0.1 with a 1-epoch warm-up then cosine, momentum 0.9 (Nesterov), weight
decay 5e-4 (not on BN and biases), random crop + flip, torchvision's default dropout 0.2 before the classifier. The
network keeps torchvision's strides (32x down-sampling: 1x1 features at 32 px), as ``torchvision:mobilenet_v2``
does in every Domino command.

Usage: ``EDGENAS_DATA=DIR python benchmarks/domino_start.py [--epochs 20]`` (rerun the same command to resume;
``--summarise-only`` writes the results from the finished run). Writes ``benchmarks/results/domino_start.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import machine, write_results

RUN = Path(__file__).resolve().parents[1] / "runs" / "bench-domino" / "start" / "mbv2"
MODEL = "torchvision:mobilenet_v2"
RECIPE = {
    "--batch-size": "128",
    "--lr": "0.1",
    "--lr-warmup-epochs": "1",
    "--weight-decay": "5e-4",
    "--resolution": "32",
}
#: The issue's aim for MobileNetV2's top-1 on the CIFAR-10 test set (%).
AIM_TOP1 = 80.0


def train(epochs: int) -> None:
    """Run (or resume) ``edgenas train``; its own progress lines go to this process's output."""
    resume = (RUN / "checkpoints" / "last.pt").is_file()
    if (RUN / "model.pt").is_file():
        return
    command = [sys.executable, "-m", "edgenas", "train", MODEL, "-o", str(RUN), "--epochs", str(epochs), "--nesterov"]
    for key, value in RECIPE.items():
        command += [key, value]
    if resume:
        command.append("--resume")
    subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def epochs_record() -> list[dict]:
    lines = (RUN / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "epoch"]


def summarise(epochs: int) -> None:
    records = epochs_record()
    final = records[-1]
    hours = sum(r["epoch_time_s"] for r in records) / 3600
    payload = {
        "machine": machine(),
        "model": MODEL,
        "run": str(RUN.relative_to(RUN.parents[3])),
        "recipe": {**RECIPE, "--epochs": epochs, "--nesterov": True},
        "epochs": records,
        "final_top1": final["test_top1"],
        "train_hours": round(hours, 2),
        "aim_top1": AIM_TOP1,
    }
    rows = "\n".join(
        f"| {r['epoch']} | {r['train_loss']:.3f} | {r['train_top1']:.1f} | {r['test_top1']:.2f} "
        f"| {r['epoch_time_s']:.0f} |"
        for r in records
    )
    verdict = "reached" if final["test_top1"] >= AIM_TOP1 else "not reached"
    where = f"{payload['machine']['cpu']}, {payload['machine']['cpu_count']} cores"
    md = f"""# Domino's trained starting point (issue 31 §1)

`EDGENAS_DATA=… python benchmarks/domino_start.py` — {where},
torch {payload["machine"]["torch"]}, {payload["machine"]["date"]}.

torchvision MobileNetV2 x1.0 (torchvision's strides, 1x1 features at 32 px) trained by `edgenas train` on the full
CIFAR-10 training set (50,000 images) at 32 px, tested on the full test set (10,000): {epochs} epochs, batch 128,
SGD lr 0.1 (1 warm-up epoch, cosine), Nesterov momentum 0.9, weight decay 5e-4, crop + flip; seed 0.

**Top-1 {final["test_top1"]:.2f}%** after {final["epoch"]} epochs ({hours:.2f} h of training on this machine); the
issue's aim of {AIM_TOP1:.0f}% is {verdict}. The run directory `{payload["run"]}` is the model reference every Domino
benchmark starts from (`model.pt`: recipe + state dict).

| epoch | train loss | train top-1 (%) | test top-1 (%) | s |
|---:|---:|---:|---:|---:|
{rows}
"""
    write_results("domino_start", payload, md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--summarise-only", action="store_true")
    args = parser.parse_args()
    if not args.summarise_only:
        train(args.epochs)
    summarise(args.epochs)


if __name__ == "__main__":
    main()

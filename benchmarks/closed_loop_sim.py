"""The closed loop (``edgenas.search.closed_loop``) on the simulated device of the tests: which local correction?

Usage:
    python benchmarks/closed_loop_sim.py [--seeds 12]

The device (``tests/search/_device.py``): an additive cost per op times ``1 + 0.15 tanh(pairwise term of adjacent
layers)`` (a per-arch error no additive predictor knows), 3% slower than when profiled and drifting +0.2% per
measurement, no measurement noise. Per seed: a LUT fitted on a 200-arch covering profile; five targets over the
profiled range, ends included; the "searched" arch is one the LUT predicts within 1% of T, alpha prefers it. Per
correction model and ridge: loops landed within ±2%, measurements spent, preference lost (sum of log softmax alpha).
Results: ``results/closed_loop_sim.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _common import machine, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))

from _device import SimulatedDevice, alpha_preferring
from _toy import toy_space

import edgenas.search.closed_loop as closed_loop
from edgenas.search.coverage import archs_near

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
SETTINGS = (("additive", 1.0), ("additive", 3.0), ("kernel", 1.0), ("both", 1.0))


def run(model: str, ridge: float, seeds: int) -> dict:
    space = toy_space()
    landed, spent, lost = 0, [], []
    for seed in range(seeds):
        device = SimulatedDevice(space, seed=seed, drift=0.002)
        predictor = device.fitted_lut(200, seed=seed)
        low, high = predictor.meta.value_range
        for fraction in FRACTIONS:
            value = low + fraction * (high - low)
            arch = archs_near(predictor, space, value, 1, band=0.01, seed=seed)[0]
            alpha = alpha_preferring(space, arch, seed=seed)
            correction = closed_loop.CorrectionModel(model, ridge)
            result = closed_loop.close_loop(arch, alpha, predictor, value, device, correction=correction)
            landed += result.within_tolerance
            spent.append(len(result.measurements))
            kept = max(m["score"] for m in result.measurements if m["arch"] == str(result.chosen))
            lost.append(result.measurements[0]["score"] - kept)
    return {
        "model": model,
        "ridge": ridge,
        "loops": seeds * len(FRACTIONS),
        "landed": landed,
        "spent_mean": float(np.mean(spent)),
        "spent_max": int(max(spent)),
        "lost_mean": float(np.mean(lost)),
    }


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# The closed loop on a simulated device",
        "",
        f"Machine: {m['cpu']}; commit {m['git_commit']}, {m['date']}. Command: `python benchmarks/closed_loop_sim.py"
        f" --seeds {payload['seeds']}`. Protocol: the script's docstring.",
        "",
        "| correction | ridge | landed within ±2% | measurements (mean, max) | preference lost (mean) |",
        "|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        lines.append(
            f"| {r['model']} | {r['ridge']:g} | {r['landed']} of {r['loops']} | {r['spent_mean']:.1f}, "
            f"{r['spent_max']} | {r['lost_mean']:.2f} |"
        )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    args = parser.parse_args()
    rows = [run(model, ridge, args.seeds) for model, ridge in SETTINGS]
    payload = {"seeds": args.seeds, "rows": rows, "machine": machine()}
    write_results("closed_loop_sim", payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()

"""How far the accuracy proxies can be trusted: rank quality on independent samples of NAS-Bench-201 (issue 29 §1).

Each sample is one ``edgenas bench proxies`` run (its own seed: other cells, other probe batches and initialisation);
this script reads their ``results.json`` and reports, per proxy and training budget, Kendall tau against the tables'
200-epoch CIFAR-10 test accuracy in every sample, their mean and their spread (max - min): a proxy whose tau moves
more between samples than between proxies cannot be trusted to rank by itself.

Usage (the committed figures; ~15 min a sample on 2 CPU cores)::

    for s in 0 11; do EDGENAS_DATA=DIR edgenas bench proxies -o runs/proxies-s$s --n-archs 100 --epochs 4 \\
        --images 2560 --cells-per-stage 1 --seed $s; done
    python benchmarks/proxies_samples.py runs/proxies-s0 runs/proxies-s11

Writes ``benchmarks/results/proxies_samples.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import machine, write_results

TRUTH = "200ep"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, nargs="+", help="folders of `edgenas bench proxies` runs")
    args = parser.parse_args()
    samples = [json.loads((folder / "results.json").read_text()) for folder in args.samples]
    rows = []
    keys = dict.fromkeys((r["proxy"], r["epochs"]) for r in samples[0]["rows"] if r["truth"] == TRUTH)
    for proxy, epochs in keys:
        found = [
            next(r for r in s["rows"] if r["proxy"] == proxy and r["epochs"] == epochs and r["truth"] == TRUTH)
            for s in samples
        ]
        taus = [r["kendall_tau"] for r in found]
        rows.append(
            {
                "proxy": proxy,
                "epochs": epochs,
                "taus": taus,
                "intervals": [r["tau_interval"] for r in found],
                "spearmans": [r["spearman"] for r in found],
                "mean_tau": float(np.mean(taus)),
                "spread": float(max(taus) - min(taus)),
            }
        )
    payload = {
        "machine": machine(),
        "samples": [
            {"folder": str(f), "seed": s["network"]["seed"], "cells": len(s["cells"]), "images": s["images"]}
            for f, s in zip(args.samples, samples, strict=True)
        ],
        "rows": rows,
    }
    write_results("proxies_samples", payload, _markdown(payload))


def _markdown(p: dict) -> str:
    samples = p["samples"]
    head = " | ".join(f"tau, seed {s['seed']} ({s['cells']} cells)" for s in samples)
    lines = [
        "# Accuracy proxies on independent samples of NAS-Bench-201 (`python benchmarks/proxies_samples.py`)",
        "",
        f"Machine: {p['machine']['cpu']} ({p['machine']['cpu_count']} cores). {len(samples)} samples, each "
        f"`edgenas bench proxies --n-archs {samples[0]['cells']} --images {samples[0]['images']} --cells-per-stage 1 "
        "--seed S` (its own cells, probe batches and initialisation); Kendall tau against the tables' 200-epoch "
        "CIFAR-10 test accuracy, [95% bootstrap interval over cells].",
        "",
        f"| proxy | epochs | {head} | mean | spread (max - min) |",
        "|---|---|" + "---|" * len(samples) + "---|---|",
    ]
    for r in p["rows"]:
        cells = " | ".join(f"{t:.3f} [{i[0]:.2f}, {i[1]:.2f}]" for t, i in zip(r["taus"], r["intervals"], strict=True))
        lines.append(f"| {r['proxy']} | {r['epochs']} | {cells} | {r['mean_tau']:.3f} | {r['spread']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

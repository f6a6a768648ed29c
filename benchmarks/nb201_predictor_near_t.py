"""How accurate each latency predictor kind is *near the target*, where a budgeted search needs it.

Usage:
    python benchmarks/nb201_predictor_near_t.py --data DIR [--kinds mlp,gnn,gcn,lut] [--seeds 2] [--train 1000]

A global score hides what a search meets: a predictor with Spearman 0.91 had a held-out MAPE of 56% and sent a
search 16% off its Pixel 3 target. For each HW-NAS-Bench column and kind, a predictor is fitted on ``--train``
seeded random cells of the NAS-Bench-201 space (the table's values stand in for profiling the device) and scored on
every other cell: overall (MAPE, Spearman) and on the cells whose true latency lies within ±10% of each target of
the budget benchmark (``benchmarks/nb201.py budget``): MAPE there, and the median signed error there (a bias near T
is what moves a search's landing point; a search that trusts the predictor lands off by about that much).
Results: ``benchmarks/results/nb201_predictor_near_t.{json,md}``. One torch thread (runs beside a benchmark).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, write_results

#: HW-NAS-Bench columns and the targets (ms) of the budget benchmark on each.
TARGETS: dict[str, tuple[float, ...]] = {"edgegpu": (4.0, 5.0, 6.0), "raspi4": (16.0, 26.0, 39.0)}
COLUMNS = {"edgegpu": "cifar10_edgegpu_latency_ms", "raspi4": "cifar10_raspi4_latency_ms"}
#: Cells whose true latency is within this share of T count as "near T".
NEAR = 0.10


def near_t_scores(predicted: np.ndarray, truth: np.ndarray, target: float) -> dict[str, float]:
    """MAPE (%) and median signed relative error (%) of the cells within :data:`NEAR` of ``target``."""
    near = np.abs(truth / target - 1.0) <= NEAR
    rel = (predicted[near] - truth[near]) / truth[near]
    return {"n": int(near.sum()), "mape": float(100 * np.abs(rel).mean()), "bias": float(100 * np.median(rel))}


def evaluate(data: Path, column: str, kind: str, train: int, seed: int) -> dict[str, Any]:
    from edgenas.predictors.data import table_from_csv
    from edgenas.predictors.fit import FitConfig, fit_predictor
    from edgenas.predictors.scores import scores
    from edgenas.spaces import get_space

    space = get_space("nb201")
    table = table_from_csv(data / "hwnasbench" / "hwnasbench_nb201_cifar10.csv", space, "arch_str", COLUMNS[column])
    fit_rows, test_rows = table.split(train, seed=seed)
    predictor = fit_predictor(kind, fit_rows, FitConfig(seed=seed))
    predicted = np.asarray(predictor.predict(test_rows.specs), float)
    overall = scores(predicted, test_rows.values)
    return {
        "column": column,
        "kind": kind,
        "seed": seed,
        "mape": overall["mape"],
        "spearman": overall["spearman"],
        "near": {f"{t:g}": near_t_scores(predicted, test_rows.values, t) for t in TARGETS[column]},
    }


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (column, kind)."""
    rows = []
    for key in dict.fromkeys((r["column"], r["kind"]) for r in records):
        mine = [r for r in records if (r["column"], r["kind"]) == key]
        row = {"column": key[0], "kind": key[1], "n_seeds": len(mine)}
        row["mape"] = statistics.fmean(r["mape"] for r in mine)
        row["spearman"] = statistics.fmean(r["spearman"] for r in mine)
        row["near"] = {
            t: {m: statistics.fmean(r["near"][t][m] for r in mine) for m in ("n", "mape", "bias")}
            for t in mine[0]["near"]
        }
        rows.append(row)
    return rows


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# Latency predictors near the target (NAS-Bench-201 cells, HW-NAS-Bench columns)",
        "",
        f"Machine: {m['cpu']}, torch {m['torch']}, commit {m['git_commit']}, {m['date']}. Each kind is fitted on "
        f"{payload['train']} random cells (seeds {payload['seeds']}, mean over seeds) and scored on the other "
        f"{15625 - payload['train']:,}; near T = true latency within ±{100 * NEAR:g}% of T. Bias: median signed "
        "error (%) near T (a search trusting the predictor lands about that far off).",
    ]
    for column, targets in TARGETS.items():
        rows = [r for r in payload["rows"] if r["column"] == column]
        if not rows:
            continue
        head = " | ".join(f"MAPE / bias @ {t:g} ms" for t in targets)
        lines += ["", f"## {column}", "", f"| kind | MAPE (%) | Spearman | {head} |", "|---" * (3 + len(targets)) + "|"]
        for r in rows:
            at = [r["near"][f"{t:g}"] for t in targets]
            near = " | ".join(f"{a['mape']:.1f} / {a['bias']:+.1f}" for a in at)
            lines.append(f"| {r['kind']} | {r['mape']:.1f} | {r['spearman']:.3f} | {near} |")
        cells = " · ".join(f"{t:g} ms: {rows[0]['near'][f'{t:g}']['n']:.0f} cells" for t in targets)
        lines.append(f"\nCells near each T (test cells): {cells}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("EDGENAS_DATA"))
    parser.add_argument("--kinds", default="mlp,gnn,gcn,lut")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train", type=int, default=1000)
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("--data DIR (or EDGENAS_DATA) is required")
    import torch

    torch.set_num_threads(1)
    records = [
        evaluate(args.data, column, kind, args.train, seed)
        for column in TARGETS
        for kind in args.kinds.split(",")
        for seed in range(args.seeds)
    ]
    for r in records:
        print(r["column"], r["kind"], r["seed"], f"{r['mape']:.1f}", r["near"], flush=True)
    payload = {
        "machine": machine(),
        "train": args.train,
        "seeds": list(range(args.seeds)),
        "records": records,
        "rows": summarise(records),
    }
    paths = write_results("nb201_predictor_near_t", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

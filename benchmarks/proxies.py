"""Accuracy proxies on NAS-Bench-201 (thesis Fig 4.6/4.7 and 4.11), CPU-sized.

1. Rank quality: N cells probed E epochs on a class-balanced CIFAR-10 subset; Kendall tau and Spearman of BTE, TSE,
   TSE-E and the Jacobian score after 1..E epochs against the tables' 200-epoch (and 12-epoch) test accuracy, with
   bootstrap intervals.
2. Evolution on the table: for each proxy as fitness (3 epochs), the evolutionary engine searches cells whose true
   HW-NAS-Bench latency is at most T, at equal evaluations; the true accuracy of the cell each picks, beside the
   oracle at T and the mean of the cells under T (a random pick).

Probes are cached in ``runs/bench-proxies/traces.jsonl`` (both parts share them; a rerun resumes).

Usage: ``EDGENAS_DATA=DIR python benchmarks/proxies.py [--n-archs 48 --epochs 4 --images 2560 --cells-per-stage 1]``
Writes ``benchmarks/results/proxies.{json,md}`` and ``proxies_ranks.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, write_results

from edgenas.bench import load_nb201
from edgenas.bench.proxies import (
    StudyNetwork,
    TraceCache,
    evolution_study,
    rank_markdown,
    run_rank_study,
)
from edgenas.evolution import EvolutionConfig
from edgenas.proxies import ProbeSettings, proxy_batches
from edgenas.report.figures import proxy_ranks
from edgenas.train import load_dataset

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-proxies"
#: The evolution part: a small population so that three proxies x two seeds fit a quarter of a CPU hour.
EVOLUTION = EvolutionConfig(population=8, iterations=3, top_k=4)
EVOLUTION_SEEDS = (0, 1)
#: Raspberry Pi 4 column of HW-NAS-Bench (the thesis' Fig 4.11 device); T = this quantile of its latencies.
COLUMN, TARGET_QUANTILE = "raspi4", 0.5
EVOLUTION_EPOCHS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-archs", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=2560)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()

    start = time.time()
    table = load_nb201()
    data = load_dataset(None, image_size=32)
    network = StudyNetwork(cells_per_stage=args.cells_per_stage)
    ranks = run_rank_study(
        table,
        data,
        RUNS,
        n_archs=args.n_archs,
        epochs=args.epochs,
        images=args.images,
        batch_size=args.batch_size,
        network=network,
        bootstrap=args.bootstrap,
        on_probe=lambda arch: print(f"probed {arch}", flush=True),
    )
    print(f"rank study done after {time.time() - start:.0f} s", flush=True)

    batches = proxy_batches(data, args.images, args.batch_size, seed=network.seed)
    traces = TraceCache(RUNS / "traces.jsonl", batches, ProbeSettings(epochs=args.epochs), network)
    latency = table.latency[table.column(COLUMN)]
    target = float(np.quantile(latency, TARGET_QUANTILE))
    under = latency <= target
    evolution = []
    for seed in EVOLUTION_SEEDS:
        config = EvolutionConfig(**{**EVOLUTION.__dict__, "seed": seed})
        rows = evolution_study(table, traces, column=COLUMN, target_ms=target, config=config, epochs=EVOLUTION_EPOCHS)
        evolution.extend(rows)
        print(rows, flush=True)
    summary = {
        name: {
            "mean_test_acc": float(np.mean([r["test_acc"] for r in evolution if r["proxy"] == name])),
            "per_seed": [r["test_acc"] for r in evolution if r["proxy"] == name],
            "evaluations": [r["evaluations"] for r in evolution if r["proxy"] == name],
        }
        for name in dict.fromkeys(r["proxy"] for r in evolution)
    }
    reference = {
        "column": table.column(COLUMN),
        "target_ms": target,
        "oracle_test_acc": float(table.test_acc[under].max()),
        "random_mean_test_acc": float(table.test_acc[under].mean()),
        "cells_under_target": int(under.sum()),
    }
    payload = {
        "machine": machine(),
        "wall_s": time.time() - start,
        "probe_s_total": float(sum(t.seconds for t in traces.traces.values())),
        "cells_probed": len(traces.traces),
        "ranks": ranks,
        "evolution": {"config": EVOLUTION.__dict__, "rows": evolution, "summary": summary, "reference": reference},
    }
    (RESULTS / "proxies_ranks.png").write_bytes(proxy_ranks(ranks["rows"], "200ep"))
    write_results("proxies", payload, _markdown(payload, args))


def _markdown(payload: dict, args: argparse.Namespace) -> str:
    ranks, evo = payload["ranks"], payload["evolution"]
    ref = evo["reference"]
    lines = [
        "# Accuracy proxies on NAS-Bench-201 (`python benchmarks/proxies.py`)",
        "",
        f"Machine: {payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores); "
        f"{payload['cells_probed']} cells probed in all, {payload['probe_s_total'] / 60:.0f} min of probing (cached in "
        f"runs/bench-proxies: this invocation took {payload['wall_s'] / 60:.0f} min). {len(ranks['cells'])} cells "
        f"sampled uniformly (seed 0), each probed "
        f"{args.epochs} epochs on {args.images} class-balanced CIFAR-10 training images (batch {args.batch_size}, "
        f"fixed order, no augmentation, SGD lr 0.1 Nesterov, the same initialisation seed) as its NAS-Bench-201 "
        f"network with {args.cells_per_stage} cell(s) per stage (the tables train 5): a CPU-sized probe; the truth is "
        f"the tables' accuracy of the full network. Median probe {ranks['median_probe_s']:.1f} s. Intervals: 95% "
        f"bootstrap over cells ({ranks['bootstrap']} resamples).",
        "",
        "## Kendall tau vs the 200-epoch test accuracy",
        "",
        rank_markdown(ranks["rows"], "200ep"),
        "## Kendall tau vs the 12-epoch test accuracy",
        "",
        rank_markdown(ranks["rows"], "12ep"),
        "## Spearman rho vs the 200-epoch test accuracy",
        "",
        "| proxy | " + " | ".join(f"rho @ {e} ep" for e in sorted({r["epochs"] for r in ranks["rows"]})) + " |",
    ]
    budgets = sorted({r["epochs"] for r in ranks["rows"]})
    lines.append("|---|" + "---|" * len(budgets))
    for name in dict.fromkeys(r["proxy"] for r in ranks["rows"]):
        cells = {r["epochs"]: r for r in ranks["rows"] if r["proxy"] == name and r["truth"] == "200ep"}
        lines.append(
            f"| {name} | " + " | ".join(f"{cells[e]['spearman']:.3f}" if e in cells else "-" for e in budgets) + " |"
        )
    lines += [
        "",
        f"## Evolution on the table: proxy as fitness, true {ref['column']} <= {ref['target_ms']:.2f} ms",
        "",
        f"Population {evo['config']['population']}, {evo['config']['iterations']} generations, top "
        f"{evo['config']['top_k']}, rates 0.5; seeds {', '.join(map(str, EVOLUTION_SEEDS))}; BTE and TSE after "
        f"{EVOLUTION_EPOCHS} epochs, Jacobian at initialisation. {ref['cells_under_target']} cells meet T; oracle "
        f"{ref['oracle_test_acc']:.2f}%, a random one {ref['random_mean_test_acc']:.2f}% on average.",
        "",
        "| fitness | true test acc of the pick (mean) | per seed | cells scored per seed |",
        "|---|---|---|---|",
    ]
    for name, s in evo["summary"].items():
        per_seed = ", ".join(f"{a:.2f}" for a in s["per_seed"])
        lines.append(f"| {name} | {s['mean_test_acc']:.2f}% | {per_seed} | {', '.join(map(str, s['evaluations']))} |")
    lines += ["", "![tau vs budget](proxies_ranks.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

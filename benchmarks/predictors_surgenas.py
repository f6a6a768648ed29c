"""The predictor phases of the SurgeNAS issue (``python benchmarks/predictors.py attention|sampling --data DIR``).

``attention``: the GNN of thesis Eq 3.15 in its attention forms — masks computed from each node's operator
features and a learned per-node term (``operator``), from the operator features alone (``operator-only``), and
learned per node and channel (``node``, the first wave's) — and the plain GCN of Eq 3.14, each fitted on the same
seeded split (``--train`` archs, ``--epochs``, batch 8) of every data set of ``benchmarks/predictors.py``; RMSE,
Kendall tau, Spearman and the share within 10% on the rest.

``sampling``: sample efficiency of the GNN with training archs drawn uniformly vs by SurgeNAS' ordered sampling
(thesis Sec 3.3.5: groups in which every op of every layer appears once) on HW-NAS-Bench's NB201 edge-GPU latency
(the table holds every cell, so any drawn arch has its value). For each of 3 draws, 1,000 archs per sampler are
drawn once and their prefixes of 10 ... 1,000 train; the test set is 3,000 cells drawn by neither; Spearman and
RMSE, mean over the draws.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgenas.predictors import FitConfig, fit_predictor, scores

#: GNN forms compared: label -> (kind, hyper).
GRAPH_FORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "gnn, operator + node attention": ("gnn", {"attention": "operator"}),
    "gnn, operator-only attention": ("gnn", {"attention": "operator-only"}),
    "gnn, node attention (first wave)": ("gnn", {"attention": "node"}),
    "gcn (no attention)": ("gcn", {}),
}
SAMPLING_SIZES = (10, 20, 50, 100, 200, 500, 1000)
SAMPLING_DRAWS = 3
SAMPLING_TEST = 3000


def attention(loaders: dict[str, Callable[[], Any]], train_n: int, epochs: int) -> dict[str, Any]:
    """Every graph form on one seeded split of every data set."""
    out: dict[str, Any] = {}
    for name, load in loaders.items():
        try:
            table = load()
        except Exception as exc:  # a data set that is not on this machine
            out[name] = {"error": str(exc)}
            continue
        train, test = table.split(train_n, seed=0)
        rows = []
        for label, (kind, hyper) in GRAPH_FORMS.items():
            start = time.perf_counter()
            predictor = fit_predictor(kind, train, FitConfig(epochs=epochs), hyper=hyper)
            row = scores(predictor.predict(test.specs), test.values)
            rows.append({"form": label, "fit_s": round(time.perf_counter() - start, 1), **row})
        out[name] = {"metric": table.metric, "train": len(train), "test": len(test), "rows": rows}
        print(f"attention {name}", file=sys.stderr, flush=True)
    return out


def sampling(table: Any, epochs: int) -> dict[str, Any]:
    """Uniform vs ordered training archs for the GNN on a table that holds every arch of its space."""
    space = table.space
    index = {spec.choices: i for i, spec in enumerate(table.specs)}
    results: dict[str, list[list[dict[str, float]]]] = {"uniform": [], "ordered": []}
    for draw in range(SAMPLING_DRAWS):
        drawn = {
            name: space.sample(seed=1000 + draw, n=max(SAMPLING_SIZES), ordered=name == "ordered") for name in results
        }
        used = {index[s.choices] for specs in drawn.values() for s in specs}
        free = np.array(sorted(set(range(len(table))) - used))
        test = table.subset(np.random.default_rng(draw).choice(free, SAMPLING_TEST, replace=False))
        for name, specs in drawn.items():
            rows = []
            for size in SAMPLING_SIZES:
                train = table.subset(np.array([index[s.choices] for s in specs[:size]]))
                predictor = fit_predictor("gnn", train, FitConfig(epochs=epochs, seed=draw))
                rows.append({"train_n": size, **scores(predictor.predict(test.specs), test.values)})
            results[name].append(rows)
        print(f"sampling draw {draw}", file=sys.stderr, flush=True)
    curve = {
        name: [
            {
                "train_n": size,
                "spearman": float(np.mean([d[i]["spearman"] for d in draws])),
                "rmse": float(np.mean([d[i]["rmse"] for d in draws])),
            }
            for i, size in enumerate(SAMPLING_SIZES)
        ]
        for name, draws in results.items()
    }
    return {"draws": SAMPLING_DRAWS, "test": SAMPLING_TEST, "curve": curve}


def _machine(phase: dict[str, Any]) -> str:
    m = phase.get("machine", {})
    return f"Machine: {m.get('cpu', '?')}, commit {m.get('git_commit', '?')}, {m.get('date', '?')}."


def markdown(payload: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    att = payload.get("attention")
    if att:
        lines += [
            "## GNN attention forms (`python benchmarks/predictors.py attention --data DIR`)",
            "",
            f"{_machine(att)} Same split per data set (train 1,000, the rest tested). `operator + node`: masks "
            "sigmoid(B_node + X A + b) of each node's operator features X and a learned per-node term (thesis Eq 3.15 "
            "as METHODS.md reads it); `operator-only`: without B; `node`: B alone (the first wave's); `gcn`: none "
            "(Eq 3.14).",
            "",
            "| data set | form | RMSE | Kendall tau | Spearman | within 10% | fit (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, res in att.items():
            if name == "machine":
                continue
            if "error" in res:
                lines.append(f"| {name} | not run: {res['error']} | | | | | |")
                continue
            for r in res["rows"]:
                lines.append(
                    f"| {name} | {r['form']} | {r['rmse']:.4g} | {r['kendall_tau']:.4f} | {r['spearman']:.4f} | "
                    f"{r['within_10']:.1f} | {r['fit_s']} |"
                )
        lines.append("")
    smp = payload.get("sampling")
    if smp:
        lines += [
            "## Training archs: uniform vs ordered sampling (`python benchmarks/predictors.py sampling --data DIR`)",
            "",
            f"{_machine(smp)} GNN on HW-NAS-Bench edgegpu latency; Spearman (RMSE, ms) on {smp['test']} cells "
            f"drawn by neither sampler, mean of {smp['draws']} draws.",
            "",
            "| n | uniform | ordered |",
            "|---|---|---|",
        ]
        uniform, ordered = smp["curve"]["uniform"], smp["curve"]["ordered"]
        for u, o in zip(uniform, ordered, strict=True):
            lines.append(
                f"| {u['train_n']} | {u['spearman']:.4f} ({u['rmse']:.3f}) | {o['spearman']:.4f} ({o['rmse']:.3f}) |"
            )
        lines.append("")
    return lines

"""Why our search loop lost to NNI's on NAS-Bench-201, one factor at a time, and what each strategy finds once fixed.

Usage:
    python benchmarks/nb201_parity.py --data DIR parity [--seeds 5] [--workers 2] [--rows nni,he-init,...]
    python benchmarks/nb201_parity.py --data DIR strategies [--seeds 5] [--workers 2] [--rows darts,gdas,...]
    python benchmarks/nb201_parity.py --data DIR derivations   # every finished search's alpha read by both rules
    python benchmarks/nb201_parity.py --data DIR render        # the markdown again from the JSON, no search

``parity``: DARTS (first order) configured to match NNI 3.0's loop as closely as our engine allows (per-batch
alternation, constant learning rates, no weights-only warm-up, plain momentum, alpha at 1e-3·N(0,1), PyTorch's
default initialisation, affine-free BatchNorm in the search cells, no gradient clip), then each of our former
choices restored alone. ``strategies``: every strategy with the settings that won, accuracy only, and random
search at equal wall-clock. Every row runs the same seeds 0..N-1; a seed fixes the split and the data order, so
rows are paired by seed, and each row's difference to its reference row comes with a 95% bootstrap interval of
the mean paired difference (resolved = the interval excludes 0).

Budget (the referee's CPU budget, ``benchmarks/results/nb201.md``): 5,000 class-balanced CIFAR-10 training images
split half/half, 8 epochs, batch 64, one cell per stage in the searched network, alpha Adam at the lr that keeps
DARTS' protocol steps x lr (0.0188 at this budget, the lr NNI's rows ran with). Each search runs in its own worker
process with one torch thread (``--workers`` processes at once); seconds are per search at one thread.
Results: ``benchmarks/results/nb201_parity.{json,md}`` (phases merge); runs under ``runs/bench-parity``
(resumable: a finished search is judged again, not run again).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine, paired_difference, write_results

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-parity"
#: The referee's CPU budget (one search is 1-3 minutes at one thread here).
SUBSET, EPOCHS, BATCH, CELLS = 5_000, 8, 64, 1
#: Epochs of the single-path rows given DARTS' wall-clock (a GDAS epoch costs about a third of a DARTS one here).
LONG_EPOCHS = 24
#: Weights-only epochs of the fair warm-up rows (every op of every edge trained once per step: about five single-path
#: epochs' time each, so these rows run 20 epochs to stay near DARTS' wall-clock).
FAIR_WARMUP = 4
#: The longer CPU budget (issue 27: the best strategy's mean at a budget where one seed takes about half an hour
#: at one thread here): three times the images, 10 epochs, 3.75x the referee's steps.
LONG_SUBSET, LONG_BUDGET_EPOCHS = 15_000, 10
#: GDAS' longer budget (epochs at LONG_SUBSET images) and NAS-Bench-201's starting temperature (tau_max).
GDAS_LONG_EPOCHS, GDAS_TAU_MAX = 24, 10.0
#: CIFAR-10 chance (%): the tables' accuracy of a cell whose output is zero.
CHANCE_ACC = 10.0

#: NNI 3.0's DARTS loop in our engine's terms, but for one setting: NNI's NasBench201 cells keep affine BatchNorm
#: (as ours did); NAS-Bench-201's own search cells, DrNAS and the LightNAS authors' code make it affine-free, which
#: this reference row does (the ``bn-affine`` row restores it: that row is NNI's loop exactly as far as the engine
#: allows).
NNI_LOOP: dict[str, Any] = {
    "warmup_epochs": 0,
    "alternate": "batch",
    "w_lr_schedule": "constant",
    "alpha_lr_schedule": "constant",
    "w_nesterov": False,
    "w_grad_clip": 0.0,
    "alpha_init_std": 1e-3,
    "supernet_init": "torch",
    "search_bn_affine": False,
}
#: The loop the strategies phase runs: NNI's, until the parity phase shows a restored choice of ours helps.
WINNING_LOOP: dict[str, Any] = dict(NNI_LOOP)
#: Our engine's former choices, each restored alone on top of NNI's loop (row name -> (label, overrides)).
RESTORED: dict[str, tuple[str, dict[str, Any]]] = {
    "he-init": ("+ He-normal init (ours)", {"supernet_init": "space"}),
    "alpha-zeros": ("+ alpha at exact zeros (ours)", {"alpha_init_std": 0.0}),
    "warmup": ("+ one weights-only warm-up epoch (ours)", {"warmup_epochs": 1}),
    "alpha-cosine": ("+ cosine alpha lr (ours)", {"alpha_lr_schedule": "cosine"}),
    "w-cosine": ("+ cosine weight lr (ours)", {"w_lr_schedule": "cosine"}),
    "bn-affine": (
        "+ affine BatchNorm in the cells (ours, and NNI's: this row is NNI's loop)",
        {"search_bn_affine": True},
    ),
    "nesterov": ("+ Nesterov momentum (ours)", {"w_nesterov": True}),
    "epoch-alternation": ("+ epoch-wise alternation (ours)", {"alternate": "epoch"}),
    "clip5": ("+ gradient clip 5 (NAS-Bench-201, DrNAS)", {"w_grad_clip": 5.0}),
    "warmup+alpha-cosine": (
        "+ warm-up and cosine alpha lr together",
        {"warmup_epochs": 1, "alpha_lr_schedule": "cosine"},
    ),
    "ours": (
        "all of ours restored (the former default loop)",
        {
            "supernet_init": "space",
            "alpha_init_std": 0.0,
            "warmup_epochs": 1,
            "alpha_lr_schedule": "cosine",
            "w_lr_schedule": "cosine",
            "search_bn_affine": True,
            "w_nesterov": True,
            "alternate": "epoch",
        },
    ),
}


def parity_rows() -> dict[str, dict[str, Any]]:
    """The parity phase: name -> {label, strategy, options, reference}."""
    label = "DARTS, NNI's loop with affine-free BatchNorm in the cells (NAS-Bench-201's and DrNAS' cells)"
    rows = {"nni": {"label": label, "strategy": "darts", "options": dict(NNI_LOOP), "reference": None}}
    for name, (label, over) in RESTORED.items():
        rows[name] = {"label": label, "strategy": "darts", "options": NNI_LOOP | over, "reference": "nni"}
    return rows


def strategy_rows() -> dict[str, dict[str, Any]]:
    """The strategies phase: every strategy on the loop that won the parity phase (:data:`WINNING_LOOP`), accuracy
    only, and random search given their mean wall-clock."""

    def row(label: str, strategy: str, **options: Any) -> dict[str, Any]:
        return {"label": label, "strategy": strategy, "options": WINNING_LOOP | options, "reference": "random"}

    return {
        # the parity phase's `nni` row is DARTS on this loop: its finished runs are judged again, not searched
        "darts": row("DARTS", "darts") | {"run": "nni"},
        # GDAS as NAS-Bench-201's search cells run it: the unsampled ops' weights added as scalars
        "gdas": row("GDAS (unsampled ops' weights as scalars, NAS-Bench-201's form)", "gdas", unsampled_gradient=True),
        "gdas-sampled-only": row("GDAS, gradient through the sampled op only (our former form)", "gdas"),
        "lightnas": row("LightNAS (accuracy only)", "lightnas"),
        "fbnet": row("FBNet at lambda = 0 (soft Gumbel mix)", "fbnet"),
        # single path trains each op a fifth as often: the same strategies given DARTS' wall-clock (3x the epochs)
        "gdas-24ep": row(f"GDAS (NAS-Bench-201's form), {LONG_EPOCHS} epochs", "gdas", unsampled_gradient=True)
        | {"epochs": LONG_EPOCHS, "reference": "random-long"},
        "lightnas-24ep": row(f"LightNAS (accuracy only), {LONG_EPOCHS} epochs", "lightnas")
        | {"epochs": LONG_EPOCHS, "reference": "random-long"},
        # the long rows drift to parameter-free cells (none, pooling, skip): the convs, trained on a fifth of the
        # steps, lose to ops with nothing to train. The thesis' remedy: weights first, every op once per step
        "gdas-fair-warmup": row(
            f"GDAS (NAS-Bench-201's form), {FAIR_WARMUP} fair warm-up + {LONG_EPOCHS - FAIR_WARMUP - 4} epochs",
            "gdas",
            unsampled_gradient=True,
            warmup_epochs=FAIR_WARMUP,
            fair_warmup=True,
        )
        | {"epochs": LONG_EPOCHS - 4, "reference": "random-long"},
        "lightnas-fair-warmup": row(
            f"LightNAS (accuracy only), {FAIR_WARMUP} fair warm-up + {LONG_EPOCHS - FAIR_WARMUP - 4} epochs",
            "lightnas",
            warmup_epochs=FAIR_WARMUP,
            fair_warmup=True,
        )
        | {"epochs": LONG_EPOCHS - 4, "reference": "random-long"},
        # alpha's entropy stayed above 1.2 nats in the rows above (1.33 here): twice the search epochs at the same
        # alpha lr, to find the budget where single-path alpha leaves uniform
        "lightnas-fair-warmup-40ep": row(
            f"LightNAS (accuracy only), {FAIR_WARMUP} fair warm-up + {2 * (LONG_EPOCHS - 4) - FAIR_WARMUP} epochs",
            "lightnas",
            warmup_epochs=FAIR_WARMUP,
            fair_warmup=True,
        )
        | {"epochs": 2 * (LONG_EPOCHS - 4), "reference": "random-long"},
        # ... and three times the alpha lr at the 20 epochs (Adam moves each logit about lr per step)
        "lightnas-fair-warmup-alr3": row(
            f"LightNAS (accuracy only), {FAIR_WARMUP} fair warm-up + {LONG_EPOCHS - FAIR_WARMUP - 4} epochs, "
            "3x alpha lr",
            "lightnas",
            warmup_epochs=FAIR_WARMUP,
            fair_warmup=True,
        )
        | {"epochs": LONG_EPOCHS - 4, "reference": "random-long", "alpha_lr_scale": 3.0},
        # SurgeNAS keeps its own gradient clip (5); the identity reading is the row's question
        "surgenas-cell": row("SurgeNAS, identity phi*x once per cell (the LightNAS authors' reading)", "surgenas")
        | {"options": WINNING_LOOP | {"identity_scope": "block", "w_grad_clip": 5.0}},
        "surgenas-edge": row("SurgeNAS, identity phi*x on every edge (Eq 3.6 per layer)", "surgenas")
        | {"options": WINNING_LOOP | {"identity_scope": "layer", "w_grad_clip": 5.0}},
        "random": {
            "label": "random search, equal wall-clock",
            "strategy": "random",
            "options": {"warmup_epochs": 0},
            "reference": None,
            "epochs": 1,
        },
        "random-long": {
            "label": f"random search, the {LONG_EPOCHS}-epoch rows' wall-clock",
            "strategy": "random",
            "options": {"warmup_epochs": 0},
            "reference": None,
            "epochs": 1,
            "match": ["gdas-24ep", "lightnas-24ep"],
        },
    }


def long_rows() -> dict[str, dict[str, Any]]:
    """The longer budget: the strategies that led at the referee's budget, given 3.75x its steps (each in its own
    run folder: the short rows' ``run`` is not inherited)."""
    short = strategy_rows()
    budget = {"subset": LONG_SUBSET, "epochs": LONG_BUDGET_EPOCHS, "reference": None}
    suffix = f", {LONG_SUBSET} images, {LONG_BUDGET_EPOCHS} epochs"
    rows = {
        f"{name}-long": {k: v for k, v in short[name].items() if k != "run"}
        | budget
        | {"label": short[name]["label"] + suffix}
        for name in ("surgenas-cell", "darts")
    }
    # GDAS reached 86.5 at 3x the referee's steps: 9x them (15k images, 24 epochs), with NAS-Bench-201's start
    # temperature (tau_max 10; its decay is linear, ours exponential to the same 0.1)
    gdas = short["gdas"] | {"subset": LONG_SUBSET, "epochs": GDAS_LONG_EPOCHS, "reference": None}
    gdas["options"] = gdas["options"] | {"tau_start": GDAS_TAU_MAX}
    gdas["label"] = f"GDAS (NAS-Bench-201's form), tau 10 -> 0.1, {LONG_SUBSET} images, {GDAS_LONG_EPOCHS} epochs"
    return rows | {"gdas-long": gdas}


def _budget(warmup: int, epochs: int = EPOCHS, subset: int = SUBSET):
    from edgenas.bench.referee import Budget

    return Budget(subset=subset, epochs=epochs, warmup_epochs=warmup, batch_size=BATCH, cells_per_stage=CELLS)


_WORKER: dict[str, Any] = {}


def _init_worker(data: str) -> None:
    """One torch thread per worker (two searches on two cores), the tables and images loaded once."""
    import torch

    torch.set_num_threads(1)
    from edgenas.bench import load_nb201
    from edgenas.train import load_dataset

    _WORKER["table"], _WORKER["images"] = load_nb201(data), load_dataset(data, image_size=32)


def _search(task: tuple[str, str, str, dict[str, Any], int, int, float, int]) -> dict[str, Any]:
    name, run_name, strategy, options, seed, epochs, alpha_lr, subset = task
    from edgenas.bench.referee import search_and_judge

    options = dict(options)
    budget = replace(_budget(int(options.pop("warmup_epochs", 0)), epochs, subset))
    time_budget = float(options.pop("time_budget_s", 0.0))
    alternate = options.pop("alternate", "")
    record = search_and_judge(
        _WORKER["table"],
        strategy,
        seed,
        _WORKER["images"],
        budget,
        RUNS / run_name / f"seed{seed}",
        options=options | {"alpha_lr": alpha_lr, "time_budget_s": time_budget, "alternate": alternate},
    )
    summary = json.loads((RUNS / run_name / f"seed{seed}" / "summary.json").read_text())
    record.update(row=name, entropy=summary.get("entropy"), derivation=summary.get("derivation", "argmax"))
    return record


def run_phase(args: argparse.Namespace, rows: dict[str, dict[str, Any]], done: dict[str, Any]) -> dict[str, Any]:
    """Search every wanted row's seeds (random search last, given the mean wall-clock of the one-shot rows of this
    phase, those run before included: ``done``)."""
    from edgenas.bench.referee import protocol_alpha_lr

    alpha_lr = protocol_alpha_lr(_budget(0))  # one alpha lr per budget: warm-up rows keep NNI's
    wanted = [r for r in (args.rows.split(",") if args.rows else rows) if r in rows]
    records: dict[str, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(str(args.data),)) as pool:
        searched = [r for r in wanted if rows[r]["strategy"] != "random"]
        tasks = [
            (
                r,
                rows[r].get("run", r),
                rows[r]["strategy"],
                rows[r]["options"],
                seed,
                rows[r].get("epochs", EPOCHS),
                _row_alpha_lr(rows[r], alpha_lr),
                rows[r].get("subset", SUBSET),
            )
            for r in searched
            for seed in range(args.seeds)
        ]
        for record in pool.map(_search, tasks):
            records.setdefault(record["row"], []).append(record)
            print(record["row"], record["seed"], record["index"], f"{record['test_acc']:.2f}", flush=True)
        for r in (r for r in wanted if rows[r]["strategy"] == "random"):
            earlier = {
                name: row["records"] for name, row in done.items() if rows.get(name, {}).get("strategy") != "random"
            }
            matched = {n: recs for n, recs in (earlier | records).items() if n in rows[r].get("match", [n])}
            seconds = _equal_wall_clock(matched, args)
            options = rows[r]["options"] | {"time_budget_s": seconds}
            folder = f"{r}-{seconds:.0f}s"
            tasks = [(r, folder, "random", options, s, rows[r]["epochs"], alpha_lr, SUBSET) for s in range(args.seeds)]
            records[r] = list(pool.map(_search, tasks))
            rows[r]["label"] += f" ({seconds:.0f} s)"
    return {name: {**rows[name], "records": records[name]} for name in wanted if name in records}


def _row_alpha_lr(row: dict[str, Any], referee_lr: float) -> float:
    """The referee's alpha lr, or for a row at another number of images the lr keeping DARTS' steps x lr there; times
    the row's ``alpha_lr_scale``."""
    from edgenas.bench.referee import protocol_alpha_lr

    scale = row.get("alpha_lr_scale", 1.0)
    if row.get("subset", SUBSET) == SUBSET:
        return scale * referee_lr
    return scale * protocol_alpha_lr(_budget(0, row.get("epochs", EPOCHS), row["subset"]))


def _equal_wall_clock(records: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> float:
    """The mean search seconds of the one-shot strategies run in this phase (random search gets as much)."""
    seconds = [r["search_s"] for name, recs in records.items() for r in recs]
    return statistics.fmean(seconds) if seconds else args.random_seconds


def summarise(phase: dict[str, Any]) -> dict[str, Any]:
    """Mean ± std per row and the paired difference to its reference row (same seeds)."""
    for row in phase.values():
        accs = [r["test_acc"] for r in row["records"]]
        row["summary"] = {
            "n": len(accs),
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "search_s": statistics.fmean(r["search_s"] for r in row["records"]),
            "cells": [r["index"] for r in row["records"]],
            # seeds whose argmax cell was cut off from its input (derived as the most likely connected cell instead)
            "cut_off_argmax": sum("not a network" in r.get("derivation", "") for r in row["records"]),
            "chance_cells": sum(r["test_acc"] <= CHANCE_ACC for r in row["records"]),
            "entropy": statistics.fmean(r["entropy"] or 0.0 for r in row["records"]),
        }
        ref = phase.get(row.get("reference") or "")
        if ref is not None:
            mine = {r["seed"]: r["test_acc"] for r in row["records"]}
            theirs = {r["seed"]: r["test_acc"] for r in ref["records"]}
            seeds = sorted(set(mine) & set(theirs))
            if seeds:
                row["summary"]["vs_reference"] = paired_difference([mine[s] for s in seeds], [theirs[s] for s in seeds])
    return phase


def derivations(payload: dict[str, Any], data: Path) -> dict[str, Any]:
    """Every finished row's final alpha read by both derivation rules (argmax; DARTS' ``nonzero``: the strongest
    op that is not ``none``) and judged by the tables: the rule's effect paired on the same searches (no search)."""
    import torch

    from edgenas.bench import load_nb201
    from edgenas.spaces import get_space

    table, space = load_nb201(data), get_space("nb201")
    out = {}
    order = [*parity_rows(), *strategy_rows(), *long_rows()]  # the script's row order (the JSON stores rows by name)
    for rows in payload["phases"].values():
        for name, row in sorted(rows.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
            run = row.get("run", name)
            if row["strategy"] == "random" or name in out:
                continue
            accs: dict[str, list[float]] = {"argmax": [], "nonzero": []}
            mass = torch.zeros(len(space.op_names))
            for record in row["records"]:
                checkpoint = RUNS / run / f"seed{record['seed']}" / "checkpoints" / "last.pt"
                alpha = torch.load(checkpoint, map_location="cpu", weights_only=False)["supernet"]["alpha"].float()
                mass += torch.softmax(alpha, -1).mean(0) / len(row["records"])
                for rule in accs:
                    accs[rule].append(table.lookup(space.derive(alpha, rule))["test_acc"])
            out[name] = {
                "label": row["label"],
                "n": len(accs["argmax"]),
                # mean final softmax per op over edges and seeds: where the search put alpha's mass
                "op_mass": dict(zip(space.op_names, mass.tolist(), strict=True)),
                **{rule: _mean_std(a) for rule, a in accs.items()},
                "nonzero_minus_argmax": paired_difference(accs["nonzero"], accs["argmax"]),
                "per_seed": accs,
            }
    # every DARTS loop of the parity phase pooled (each search once): the rule's effect across loops
    darts = [r for name, r in out.items() if name in parity_rows()]
    pooled = {rule: [a for r in darts for a in r["per_seed"][rule]] for rule in ("argmax", "nonzero")}
    if pooled["argmax"]:
        out["pooled-darts"] = {
            "label": f"all {len(darts)} DARTS loops of the parity phase, pooled",
            "n": len(pooled["argmax"]),
            **{rule: _mean_std(a) for rule, a in pooled.items()},
            "nonzero_minus_argmax": paired_difference(pooled["nonzero"], pooled["argmax"]),
            "per_seed": pooled,
        }
    return out


#: The accuracy-only searches read under a latency target (beyond the thesis: search once for accuracy, then pick
#: the cell alpha likes best among those the predictor puts at T), the targets, and the band of T (relative).
WITHIN_T_ROWS = (
    "darts",
    "bn-affine",
    "surgenas-cell",
    "fbnet",
    "lightnas-fair-warmup",
    "lightnas-fair-warmup-40ep",
    "surgenas-cell-long",
)
WITHIN_T_TARGETS = (("edgegpu", 4.0), ("edgegpu", 5.0), ("edgegpu", 6.0), ("raspi4", 26.0))
WITHIN_T_BAND = 0.02
#: The measured reading: how many of the best-liked cells predicted at T are measured on the device, and the band
#: of T (relative) a measured cell must fall in to be kept.
WITHIN_T_MEASURED, WITHIN_T_MEASURED_BAND = 10, 0.05
#: The latency predictors of the budget rows (``benchmarks/nb201.py``: an MLP fitted on 1,000 cells per column).
BUDGET_PREDICTORS = Path(__file__).resolve().parents[1] / "runs" / "bench-nb201"


def within_t(payload: dict[str, Any], data: Path) -> dict[str, Any]:
    """Every accuracy-only row's final alpha read under each latency target: among the connected cells whose
    *predicted* latency is within ``WITHIN_T_BAND`` of T, the one of the largest summed log-probability (``argmax``:
    all ops; ``nonzero``: DARTS' rule, ``none`` scored as its edge's weakest other op, so it is picked only where the
    budget needs it). Judged by the tables: regret to the oracle, the mean cell of that latency, the true latency."""
    import torch

    from edgenas.bench import load_nb201
    from edgenas.bench.nb201 import oracle
    from edgenas.predictors import Predictor
    from edgenas.spaces import get_space
    from edgenas.spaces.nb201 import cell_is_connected

    table, space = load_nb201(data), get_space("nb201")
    cells = [space.from_index(i) for i in range(len(table.arch))]
    choices = torch.tensor([c.choices for c in cells])
    connected = np.array([cell_is_connected(tuple(c)) for c in choices.tolist()])
    none = space.op_names.index("none")
    rows = {**payload["phases"].get("parity", {}), **payload["phases"].get("strategies", {})}
    rows |= payload["phases"].get("long", {})
    out: dict[str, Any] = {}
    for column, target in WITHIN_T_TARGETS:
        path = BUDGET_PREDICTORS / f"predictor-{column}-1000.pt"
        if not path.is_file():
            continue
        predicted = np.asarray(Predictor.load(path).predict(cells))
        true = table.latency[table.column(column)]
        best = oracle(table, column, target)
        feasible = connected & (np.abs(predicted / target - 1) <= WITHIN_T_BAND)
        for name in (r for r in WITHIN_T_ROWS if r in rows):
            run = rows[name].get("run", name)
            for rule, landing in itertools.product(("argmax", "nonzero"), ("predicted", "measured")):
                picks = []
                for record in rows[name]["records"]:
                    ckpt = RUNS / run / f"seed{record['seed']}" / "checkpoints" / "last.pt"
                    alpha = torch.load(ckpt, map_location="cpu", weights_only=False)["supernet"]["alpha"].double()
                    scores = np.where(feasible, _cell_scores(alpha, choices, none, rule), -np.inf)
                    picks.append(_land(scores, true / target - 1) if landing == "measured" else int(np.argmax(scores)))
                accs = [float(table.test_acc[i]) for i in picks]
                misses = [float(true[i] / target - 1) for i in picks]
                out[f"{name} {rule} {landing} {column} {target:g}"] = {
                    "row": name,
                    "rule": rule,
                    "landing": landing,
                    "column": column,
                    "target_ms": target,
                    "n": len(picks),
                    "mean": statistics.fmean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "regret": best.test_acc - statistics.fmean(accs),
                    "above_mean_cell": statistics.fmean(accs) - best.mean_test_acc,
                    "misses": misses,
                    "within_5pct": sum(abs(m) <= 0.05 for m in misses),
                    "cells": picks,
                }
    return out


#: The budget rows of ``benchmarks/nb201.py`` (LightNAS with the thesis' latency term in its loss; two fair warm-up
#: epochs, cosine alpha lr, 10k images, 8 epochs), with and without CE, landed beside the accuracy-only rows.
BUDGET_ROW_RUN = "lightnas-fair-acosine-{column}-{target:g}ms{noce}-s10000-e8-w2-n1"
#: The product's landing: measurements a loop may spend and the relative band it aims at (``edgenas search``'s).
LANDED_BUDGET, LANDED_TOLERANCE = 12, 0.02
#: (derivation rule, loop variant): ``walk`` = the product's loop (alpha read by the rule); ``seek`` = also around the
#: arch alpha prefers most among all predicted near T (``close_loop(seek_preferred=True)``); ``plain`` = DARTS' rule's
#: start with alpha read by the plain softmax (the loop before it read alpha by the rule).
LANDED_READINGS = (
    ("argmax", "walk"),
    ("argmax", "seek"),
    ("nonzero", "walk"),
    ("nonzero", "seek"),
    ("nonzero", "plain"),
)


def _landing_sources(payload: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(row name, loss, seed run folder of a target) for every accuracy-only row read under T and the budget rows."""
    rows = {**payload["phases"].get("parity", {}), **payload["phases"].get("strategies", {})}
    rows |= payload["phases"].get("long", {})
    sources = []
    for name in (r for r in WITHIN_T_ROWS if r in rows):
        run = rows[name].get("run", name)
        seeds = [rec["seed"] for rec in rows[name]["records"]]
        sources.append(
            (
                name,
                "accuracy only",
                lambda column, target, run=run, seeds=seeds: [RUNS / run / f"seed{k}" for k in seeds],
            )
        )
    for noce, loss in (("", "CE + latency (thesis)"), ("-noce", "latency only (no CE)")):

        def folders(column: str, target: float, noce: str = noce) -> list[Path]:
            run = BUDGET_PREDICTORS / BUDGET_ROW_RUN.format(column=column, target=target, noce=noce)
            return sorted(p for p in run.glob("seed*") if (p / "checkpoints" / "last.pt").is_file())

        sources.append(("lightnas-budget" + noce, loss, folders))
    return sources


def landed(payload: dict[str, Any], data: Path) -> dict[str, Any]:
    """Every finished search landed on each target by the product's closed loop
    (:func:`edgenas.search.closed_loop.close_loop`: ``LANDED_BUDGET`` measurements, ``LANDED_TOLERANCE``), the
    tables' true latency standing for the device and the budget rows' MLP (1,000 cells) for its predictor; alpha read
    by each derivation rule, the loop starting from that rule's arch. Judged by the tables."""
    import torch

    from edgenas.bench import load_nb201
    from edgenas.bench.nb201 import oracle
    from edgenas.predictors import Predictor
    from edgenas.search.closed_loop import close_loop
    from edgenas.spaces import get_space

    table, space = load_nb201(data), get_space("nb201")
    out: dict[str, Any] = {}
    for column, target in WITHIN_T_TARGETS:
        path = BUDGET_PREDICTORS / f"predictor-{column}-1000.pt"
        if not path.is_file():
            continue
        predictor, true = Predictor.load(path), table.latency[table.column(column)]
        best = oracle(table, column, target)

        def measure(spec: Any, true: np.ndarray = true) -> float:
            return float(true[table.index_of(spec)])

        for (name, loss, folders), (rule, variant) in itertools.product(_landing_sources(payload), LANDED_READINGS):
            seeds = folders(column, target)
            if not seeds:
                continue
            picks, spent = [], []
            for folder in seeds:
                ckpt = folder / "checkpoints" / "last.pt"
                alpha = torch.load(ckpt, map_location="cpu", weights_only=False)["supernet"]["alpha"]
                start = space.derive(alpha.detach(), rule)
                loop = close_loop(
                    start,
                    alpha,
                    predictor,
                    target,
                    measure,
                    tolerance=LANDED_TOLERANCE,
                    budget=LANDED_BUDGET,
                    derivation="argmax" if variant == "plain" else rule,
                    seek_preferred=variant == "seek",
                )
                picks.append(table.index_of(loop.chosen))
                spent.append(len(loop.measurements))
            accs = [float(table.test_acc[i]) for i in picks]
            misses = [float(true[i] / target - 1) for i in picks]
            out[f"{name} {rule} {variant} {column} {target:g}"] = {
                "row": name,
                "loss": loss,
                "rule": rule,
                "variant": variant,
                "column": column,
                "target_ms": target,
                "n": len(picks),
                **_mean_std(accs),
                "accs": accs,
                "regret": best.test_acc - statistics.fmean(accs),
                "above_mean_cell": statistics.fmean(accs) - best.mean_test_acc,
                "misses": misses,
                "within_5pct": sum(abs(m) <= 0.05 for m in misses),
                "within_2pct": sum(abs(m) <= 0.02 for m in misses),
                "measurements": statistics.fmean(spent),
                "cells": picks,
            }
    return out


def landed_summary(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Per reading (rule, variant): mean regret, landings within ±2% / ±5%, and the paired accuracy difference of
    the same landings read another way (95% bootstrap interval)."""
    out = []
    pairs = (("argmax", "seek", "walk"), ("nonzero", "seek", "walk"), ("nonzero", "walk", "plain"))
    for rule, variant, other in pairs:
        mine = {k: r for k, r in rows.items() if r["rule"] == rule and r["variant"] == variant}
        if not mine:
            continue
        base = [rows[k.replace(f" {variant} ", f" {other} ")] for k in mine]
        a = [x for r in mine.values() for x in r["accs"]]
        b = [x for r in base for x in r["accs"]]
        out.append(
            {
                "rule": rule,
                "variant": variant,
                "other": other,
                "n": len(a),
                "regret": (
                    statistics.fmean(r["regret"] for r in mine.values()),
                    statistics.fmean(r["regret"] for r in base),
                ),
                "within_2pct": (sum(r["within_2pct"] for r in mine.values()), sum(r["within_2pct"] for r in base)),
                "within_5pct": (sum(r["within_5pct"] for r in mine.values()), sum(r["within_5pct"] for r in base)),
                "difference": paired_difference(a, b),
            }
        )
    return out


def landed_markdown(rows: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## every search landed on T by the closed loop (the product's landing; beyond the thesis)",
        "",
        f"Each finished search's alpha is landed on T by `edgenas.search.closed_loop.close_loop` (at most "
        f"{LANDED_BUDGET} measurements, tolerance ±{100 * LANDED_TOLERANCE:g}%), the tables' true latency standing "
        "for the device and the budget rows' MLP (1,000 cells) for the predictor; the loop starts from the rule's "
        "arch and never proposes a cut-off cell. Readings: `walk` = the loop (alpha read by the rule); `seek` = also "
        "around the cell alpha prefers most among all predicted near T (`seek_preferred=True`); `plain` = DARTS' "
        "rule's start, alpha read by the plain softmax (what `edgenas search` does). `lightnas-budget`: LightNAS with "
        "the thesis' latency term in its loss (`benchmarks/results/nb201.md`, s10000-e8-w2: 10k images, two fair "
        "warm-up epochs, cosine alpha lr), with and without CE. Regret to the oracle (points), the mean cell of that "
        "latency (a random cell of it), the true latency's miss.",
        "",
        "| reading | landings | mean regret (vs the other) | within ±2% | within ±5% | Δ accuracy vs the other "
        "[95% CI] | resolved |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in landed_summary(rows):
        d = r["difference"]
        lines.append(
            f"| {r['rule']} {r['variant']} vs {r['other']} | {r['n']} | {r['regret'][0]:.2f} ({r['regret'][1]:.2f}) | "
            f"{r['within_2pct'][0]} ({r['within_2pct'][1]}) | {r['within_5pct'][0]} ({r['within_5pct'][1]}) | "
            f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] | "
            f"{'yes' if d['resolved'] else 'no'} |"
        )
    lines += [
        "",
        "| row | alpha's loss | rule | reading | target | n | test acc. (%) | regret | vs mean cell | true miss (%) | "
        "within ±2% / ±5% | measurements |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        misses = ", ".join(f"{100 * m:+.1f}" for m in r["misses"])
        lines.append(
            f"| `{r['row']}` | {r['loss']} | {r['rule']} | {r['variant']} | {r['target_ms']:g} ms {r['column']} | "
            f"{r['n']} | {r['mean']:.2f} ± {r['std']:.2f} | {r['regret']:.2f} | {r['above_mean_cell']:+.2f} | "
            f"{misses} | {r['within_2pct']}/{r['n']} / {r['within_5pct']}/{r['n']} | {r['measurements']:.1f} |"
        )
    return lines


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _land(scores: np.ndarray, misses: np.ndarray) -> int:
    """The closed loop's reading: measure the ``WITHIN_T_MEASURED`` cells alpha likes best among those predicted at
    T (``misses``: each cell's measured latency / T - 1, the tables standing for the device) and keep the best liked
    within ``WITHIN_T_MEASURED_BAND`` of T, or the one measured closest to T when none is."""
    measured = [i for i in np.argsort(-scores)[:WITHIN_T_MEASURED] if np.isfinite(scores[i])]
    inside = [i for i in measured if abs(misses[i]) <= WITHIN_T_MEASURED_BAND]
    return int(inside[0] if inside else min(measured, key=lambda i: abs(misses[i])))


def _cell_scores(alpha: Any, choices: Any, none: int, rule: str) -> np.ndarray:
    """Summed log-probability of every cell under ``alpha`` (``nonzero``: softmax without ``none``, which scores as
    the edge's weakest other op)."""
    import torch

    if rule == "nonzero":
        others = [k for k in range(alpha.shape[1]) if k != none]
        log_p = torch.full_like(alpha, 0.0)
        log_p[:, others] = torch.log_softmax(alpha[:, others], -1)
        log_p[:, none] = log_p[:, others].min(1).values
    else:
        log_p = torch.log_softmax(alpha, -1)
    return log_p[torch.arange(alpha.shape[0]), choices].sum(-1).numpy()


def within_t_markdown(rows: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## accuracy-only searches read under a latency target (no search; beyond the thesis)",
        "",
        f"Among the connected cells whose latency the budget rows' MLP predictor (1,000 cells) puts within "
        f"±{100 * WITHIN_T_BAND:g}% of T, the one alpha likes best. Regret to the oracle (points), the mean cell of "
        "that latency, the true latency's miss.",
        "",
        f"`measured`: the {WITHIN_T_MEASURED} cells alpha likes best among those are measured on the device (the "
        f"tables) and the best liked within ±{100 * WITHIN_T_MEASURED_BAND:g}% of T is kept (or the closest).",
        "",
        "| row | rule | landing | target | n | test acc. (%) | regret | vs mean cell | true miss (%) | within ±5% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        misses = ", ".join(f"{100 * m:+.1f}" for m in r["misses"])
        lines.append(
            f"| `{r['row']}` | {r['rule']} | {r.get('landing', 'predicted')} | {r['target_ms']:g} ms {r['column']} | "
            f"{r['n']} | {r['mean']:.2f} ± "
            f"{r['std']:.2f} | {r['regret']:.2f} | {r['above_mean_cell']:+.2f} | {misses} | "
            f"{r['within_5pct']}/{r['n']} |"
        )
    return lines


#: nb201's ops in the order the derivation table's columns name them (the JSON file stores them sorted by name).
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _in_row_order(readings: dict[str, Any], rank: dict[str, int]) -> dict[str, Any]:
    """``readings`` (keyed by a row name, then the reading's words) in the phases' row order, then by target and
    reading (the JSON file stores them sorted by key)."""
    targets = {f"{column} {target:g}": i for i, (column, target) in enumerate(WITHIN_T_TARGETS)}

    def key(item: tuple[str, Any]) -> tuple:
        name, *words = item[0].split(" ")
        target = " ".join(words[-2:])
        return rank.get(name, len(rank)), name, targets.get(target, len(targets)), words[:-2]

    return dict(sorted(readings.items(), key=key))


def derivation_markdown(rows: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## derivation rule (the same searches' final alpha, read two ways)",
        "",
        "| row | n | argmax (%) | nonzero: DARTS' rule (%) | Δ nonzero − argmax [95% CI] | resolved | "
        "final softmax: none / skip / conv 1x1 / conv 3x3 / pool | nonzero per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        d = r["nonzero_minus_argmax"]
        mass = " / ".join(f"{r['op_mass'][op]:.2f}" for op in NB201_OPS if op in r.get("op_mass", {}))
        lines.append(
            f"| {r['label']} (`{name}`) | {r['n']} | {r['argmax']['mean']:.2f} ± {r['argmax']['std']:.2f} | "
            f"{r['nonzero']['mean']:.2f} ± {r['nonzero']['std']:.2f} | {d['mean']:+.2f} [{d['low']:+.2f}, "
            f"{d['high']:+.2f}] | {'yes' if d['resolved'] else 'no'} | {mass} | "
            f"{', '.join(f'{a:.1f}' for a in r['per_seed']['nonzero']) if r['n'] <= 5 else '—'} |"
        )
    return lines


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# NAS-Bench-201: parity with NNI's loop, then every strategy on the loop that won",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores; each search one torch thread, two at once), torch "
        f"{m['torch']}, commit {m['git_commit']}, {m['date']}.",
        f"Budget: {SUBSET} class-balanced CIFAR-10 training images (half w, half alpha), {EPOCHS} epochs, batch "
        f"{BATCH}, {CELLS} cell per stage in the searched network; alpha Adam lr {payload.get('alpha_lr', 0):.3g}. "
        "Accuracy: the tables' true 200-epoch CIFAR-10 test accuracy of the derived cell. Rows are paired by seed "
        "(a seed fixes the split and the data order); Δ is the mean paired difference to the row named, with its "
        "95% bootstrap interval; resolved = the interval excludes 0.",
    ]
    for phase, rows in payload["phases"].items():
        lines += [
            "",
            f"## {phase}",
            "",
            "| row | n | test acc. (%) | Δ vs reference (points) [95% CI] | resolved | argmax cut off / chance cells | "
            "final α entropy (nats) | search (s) | cells |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            s = row["summary"]
            vs = s.get("vs_reference")
            delta = (
                "—" if vs is None else f"{vs['mean']:+.2f} [{vs['low']:+.2f}, {vs['high']:+.2f}] vs {row['reference']}"
            )
            resolved = "—" if vs is None else ("yes" if vs["resolved"] else "no")
            cells = ", ".join(str(c) for c in s["cells"])
            lines.append(
                f"| {row['label']} (`{name}`) | {s['n']} | {s['mean']:.2f} ± {s['std']:.2f} | {delta} | {resolved} | "
                f"{s['cut_off_argmax']} / {s['chance_cells']} | {s['entropy']:.2f} | {s['search_s']:.0f} | {cells} |"
            )
    rank = {name: i for i, name in enumerate(n for rows in payload["phases"].values() for n in rows)}
    if payload.get("derivations"):
        lines += derivation_markdown(_in_row_order(payload["derivations"], rank))
    if payload.get("within_t"):
        lines += within_t_markdown(_in_row_order(payload["within_t"], rank))
    if payload.get("landed"):
        lines += landed_markdown(_in_row_order(payload["landed"], rank))
    if "nni" in payload:
        lines += ["", "NNI 3.0 on the same images, split and budget (`benchmarks/results/nni_nb201.md`):", ""]
        for name, s in payload["nni"].items():
            lines.append(f"- NNI {name}: {s['mean']:.2f} ± {s['std']:.2f} (n = {s['n']}, seeds {s['seeds']})")
        peers = peer_differences(payload)
        if peers:
            lines += [
                "",
                "Ours against NNI on the same seeds (Δ = ours − NNI, 95% bootstrap interval of the paired mean):",
                "",
                "| ours (rule) | NNI | seeds | ours (%) | NNI (%) | Δ [95% CI] | resolved |",
                "|---|---|---|---|---|---|---|",
            ]
            for p in peers:
                d = p["difference"]
                lines.append(
                    f"| `{p['ours']}` ({p['rule']}) | {p['theirs']} | {len(p['seeds'])} | {p['ours_mean']:.2f} ± "
                    f"{p['ours_std']:.2f} | {p['theirs_mean']:.2f} ± {p['theirs_std']:.2f} | {d['mean']:+.2f} "
                    f"[{d['low']:+.2f}, {d['high']:+.2f}] | {'yes' if d['resolved'] else 'no'} |"
                )
    lines += ["", f"All 15,625 cells average {payload['all_cells_mean_test_acc']:.2f}%."]
    return "\n".join(lines) + "\n"


def _nni_summary() -> dict[str, Any]:
    path = RESULTS / "nni_nb201.json"
    if not path.is_file():
        return {}
    out = {}
    for name, records in json.loads(path.read_text())["strategies"].items():
        accs = [r["test_acc"] for r in records]
        out[name] = {
            "n": len(accs),
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "seeds": [r["seed"] for r in records],
            "by_seed": {str(r["seed"]): r["test_acc"] for r in records},
        }
    return out


#: Our row, the derivation rule it is read by, and NNI's peer strategy (issue 27: DARTS within 0.5 point of NNI's
#: DARTS; FBNet at lambda = 0 within 1.0 of NNI's GumbelDARTS, which exports the argmax).
PEERS = (("darts", "nonzero", "darts"), ("darts", "argmax", "darts"), ("fbnet", "argmax", "gumbel"))


def peer_differences(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Our rows against NNI's on the same seeds (same images, split and data order): the mean paired difference and
    its 95% bootstrap interval."""
    out = []
    for ours, rule, theirs in PEERS:
        derived = payload.get("derivations", {}).get(ours)
        nni = payload.get("nni", {}).get(theirs)
        row = payload["phases"].get("strategies", {}).get(ours)
        if derived is None or nni is None or row is None:
            continue
        mine = {str(r["seed"]): a for r, a in zip(row["records"], derived["per_seed"][rule], strict=True)}
        seeds = sorted(set(mine) & set(nni["by_seed"]), key=int)
        if len(seeds) < 2:
            continue
        a, b = [mine[s] for s in seeds], [nni["by_seed"][s] for s in seeds]
        out.append(
            {
                "ours": ours,
                "rule": rule,
                "theirs": theirs,
                "seeds": [int(s) for s in seeds],
                "ours_mean": statistics.fmean(a),
                "ours_std": statistics.stdev(a),
                "theirs_mean": statistics.fmean(b),
                "theirs_std": statistics.stdev(b),
                "difference": paired_difference(a, b),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["parity", "strategies", "long", "derivations", "render"])
    parser.add_argument("--data", type=Path, default=os.environ.get("EDGENAS_DATA"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", default="", help="comma-separated row names (default: every row of the phase)")
    parser.add_argument("--random-seconds", type=float, default=120.0, help="random's budget if no one-shot row ran")
    args = parser.parse_args()
    previous = RESULTS / "nb201_parity.json"
    payload = json.loads(previous.read_text()) if previous.is_file() else {"phases": {}}
    if args.phase == "derivations":
        if args.data is None:
            raise SystemExit("--data DIR (or EDGENAS_DATA) is required")
        payload["derivations"] = derivations(payload, args.data)
        payload["within_t"] = within_t(payload, args.data)
        payload["landed"] = landed(payload, args.data)
    elif args.phase != "render":
        if args.data is None:
            raise SystemExit("--data DIR (or EDGENAS_DATA) is required")
        from edgenas.bench import load_nb201
        from edgenas.bench.referee import protocol_alpha_lr

        rows = {"parity": parity_rows, "strategies": strategy_rows, "long": long_rows}[args.phase]()
        searched = run_phase(args, rows, payload["phases"].get(args.phase, {}))
        # read again after the searches: another invocation may have written its rows meanwhile
        payload = json.loads(previous.read_text()) if previous.is_file() else {"phases": {}}
        done = payload["phases"].get(args.phase, {}) | searched
        order = [r for r in rows if r in done]
        payload["phases"][args.phase] = summarise({r: done[r] for r in order})
        payload.update(
            machine=machine(),
            alpha_lr=protocol_alpha_lr(_budget(0)),
            all_cells_mean_test_acc=float(load_nb201(args.data).test_acc.mean()),
        )
    for phase in payload["phases"]:
        payload["phases"][phase] = summarise(payload["phases"][phase])
    current = {"parity": parity_rows(), "strategies": strategy_rows(), "long": long_rows()}
    for phase, rows in list(payload["phases"].items()):  # the script's row order and wording (random keeps its s)
        order = [*current.get(phase, {}), *sorted(rows)]  # (the JSON file stores rows sorted by name)
        rows = payload["phases"][phase] = {name: rows[name] for name in dict.fromkeys(order) if name in rows}
        for name, row in rows.items():
            if name in current.get(phase, {}) and row["strategy"] != "random":
                row["label"] = current[phase][name]["label"]
    payload["nni"] = _nni_summary()
    paths = write_results("nb201_parity", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

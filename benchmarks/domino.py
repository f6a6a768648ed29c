"""Domino on this CPU (thesis Ch 5), CPU-sized: torchvision MobileNetV2 on CIFAR-10 at 32x32, ort-cpu, batch 8.

1. Predictors. Latency: N masks measured after collapse, MLP 128-64-1 fitted on the first n of a fixed training part,
   Spearman and the share within +-10% on a fixed held-out part (thesis Fig 5.5). Accuracy: proxy pairs (short
   trainings at 16 px, one task per epoch budget) and target pairs (the final recipe at 32 px); MAML adapted on 10
   target pairs vs the three baselines of Fig 5.6, RMSE and Spearman on the held-out target pairs.
2. At three measured targets between the all-grafted and the ungrafted network: Domino (evolution on the two
   predictors), a random mask meeting T, Domino-Aggressive (all grafted), MobileNetV2 width-scaled and torch-pruning
   brought to T by measurement; all trained with the same recipe, then measured round-robin (Table 5.2 / Fig 5.11).
   MobileNetV2 x1.0 and x0.2 beside them.
3. At the middle target: Train-First vs Reparameterize-First, each with and without distillation from the trained
   MobileNetV2 x1.0 (Fig 5.13 / 5.15).

Usage: ``EDGENAS_DATA=DIR python benchmarks/domino.py`` (runs alone: it measures latency). Resumable through
``runs/bench-domino``. Writes ``benchmarks/results/domino.{json,md}``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
from _common import machine, sample_efficiency, write_results

from edgenas._random import seeded_torch
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.measure import measure_modules
from edgenas.hardware.runtimes import get_runtime
from edgenas.models import graft_loaded, load_model
from edgenas.nn import reparameterize
from edgenas.predictors import table_from_store
from edgenas.predictors.meta import MetaConfig, compare_predictors
from edgenas.search.domino import (
    PairSchedule,
    PairTable,
    PredictedAccuracy,
    collect_pairs,
    final_task,
    latency_masks,
    measure_masks,
    predicted_latency,
    proxy_tasks,
    random_masks,
    search_masks,
)
from edgenas.search.domino_job import FinalTraining
from edgenas.search.evolution import EvolutionConfig
from edgenas.search.peers import PRUNE_RATIOS, WIDTHS, fit_to_latency, pruned, width_scaled
from edgenas.spaces.domino import mask_space
from edgenas.train import load_dataset, train

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-domino"
RESOLUTION, BATCH, CLASSES = 32, 8, 10
N_LATENCY, HELD_OUT = 400, 80
SAMPLE_SIZES = (25, 50, 100, 200, 320)
N_PROXY, N_SHOTS, N_HELD = 80, 10, 10
PROXY = PairSchedule(epochs=3, images=5000, test_images=1000, resolution=16, batch_size=64, lr=0.1)
FINAL = FinalTraining(epochs=5, images=10000, test_images=1000, batch_size=64, lr=0.1, seed=0)
TARGET = PairSchedule(epochs=5, images=10000, test_images=1000, resolution=32, batch_size=64, lr=0.1, seed=0)
SEARCH = EvolutionConfig(population=50, iterations=20, top_k=10, seed=0)
#: Where the targets sit between the all-grafted (0) and the ungrafted (1) network's measured latency.
TARGET_SHARES = (0.25, 0.5, 0.75)
LOADS = 3


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def cached(name: str, compute):
    path = RUNS / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value, indent=1))
    return value


def measure(models: dict[str, object], runtime) -> dict[str, float]:
    """Median over LOADS round-robin sessions of each model's median latency (ms), collapsed form."""
    names = list(models)
    plain = [reparameterize(models[n]) for n in names]
    runs = [measure_modules(plain, runtime) for _ in range(LOADS)]
    return {n: float(np.median([r[i].median_ms for r in runs])) for i, n in enumerate(names)}


def latency_study(space, runtime):
    specs = latency_masks(space, N_LATENCY, seed=0)
    with MeasurementStore(RUNS / "store.db") as db:
        device = measure_masks(
            space,
            runtime,
            db,
            N_LATENCY,
            device_name="here",
            on_progress=lambda d, t, *_: log(f"masks measured {d}/{t}") if d % 50 == 0 else None,
        )
    table = table_from_store(RUNS / "store.db", device, space)
    curve, final = sample_efficiency(table, specs, HELD_OUT, SAMPLE_SIZES, log)
    return curve, final, {"min_ms": float(np.min(table.values)), "max_ms": float(np.max(table.values))}


def accuracy_study(space, data):
    table = PairTable(RUNS / "pairs.jsonl", space)
    report = lambda d, t, s, top1: log(f"pair {d}/{t} {space.format(s)} {top1[-1]:.1f}%")  # noqa: E731
    proxy = collect_pairs(table, space.sample(seed=1, n=N_PROXY), data, PROXY, "proxy", on_pair=report)
    target_specs = space.sample(seed=2, n=N_SHOTS + N_HELD)
    target = collect_pairs(table, target_specs, data, TARGET, "target", on_pair=report)
    masks = list(target)
    shots = final_task({m: target[m] for m in masks[:N_SHOTS]}, "shots")
    held = final_task({m: target[m] for m in masks[N_SHOTS:]}, "held-out")
    config = MetaConfig(shots=N_SHOTS)
    comparison = compare_predictors(proxy_tasks(proxy), shots, held, config)
    log("accuracy predictors", comparison)
    accuracy = PredictedAccuracy.meta_learned(space, proxy_tasks(proxy), shots, config)
    spread = {"target_top1": [float(np.min(held.y) * 100), float(np.max(held.y) * 100)]}
    return comparison, accuracy, spread


def train_named(name: str, model, data, teacher=None) -> dict:
    def compute():
        log("training", name)
        result = train(
            model,
            data,
            FINAL.train_config(),
            RUNS / "train" / name,
            input_size=RESOLUTION,
            teacher=teacher,
            resume=(RUNS / "train" / name / "checkpoints" / "last.pt").is_file(),
        )
        log(name, result.final["test_top1"])
        return {"test_top1": result.final["test_top1"]}

    return cached(f"train-{name}", compute)


def grafted(mask: str, *, first: bool = False):
    with seeded_torch(FINAL.seed):
        loaded = load_model("torchvision:mobilenet_v2", num_classes=CLASSES, resolution=RESOLUTION)
    return graft_loaded(loaded, mask, reparameterize_first=first).model


def main() -> None:
    start = time.time()
    RUNS.mkdir(parents=True, exist_ok=True)
    runtime = get_runtime("ort-cpu", RuntimeOptions(batch=BATCH, resolution=RESOLUTION, threads=1))
    with seeded_torch(FINAL.seed):  # every network starts from a seeded initialisation
        base = load_model("torchvision:mobilenet_v2", num_classes=CLASSES, resolution=RESOLUTION)
    space = mask_space(base.recipe)
    data = load_dataset(None, image_size=RESOLUTION)

    curve, latency_predictor, latency_range = latency_study(space, runtime)
    latency = predicted_latency(latency_predictor, space)
    # references measured together, before any training (the targets come from them)
    with seeded_torch(FINAL.seed):
        widths = {f"width {w:g}": width_scaled(w, CLASSES, RESOLUTION).model for w in WIDTHS}
    prunes = {f"pruned {r:g}": pruned(base.model, r, RESOLUTION) for r in PRUNE_RATIOS}
    refs = {"ungrafted": base.model, "graft all": grafted(space.format(space.graft_all())), **widths, **prunes}
    ref_ms = cached("reference-latency", lambda: measure(refs, runtime))
    log("references", ref_ms)
    comparison, accuracy, spread = accuracy_study(space, data)
    low, high = ref_ms["graft all"], ref_ms["ungrafted"]
    targets = [low + share * (high - low) for share in TARGET_SHARES]

    def ladder(names):
        return lambda models: [ref_ms[n] for n in names]

    plan: dict[str, dict] = {}
    for share, target in zip(TARGET_SHARES, targets, strict=True):
        key = f"T{share:g}"
        found = search_masks(space, accuracy, latency, target, SEARCH, record=RUNS / f"search-{key}.jsonl").best
        randoms = random_masks(space, latency, target, 1, seed=int(share * 100))
        width, _ = fit_to_latency(list(widths.items()), ladder(list(widths)), target)
        prune, _ = fit_to_latency(list(prunes.items()), ladder(list(prunes)), target)
        plan[key] = {
            "target_ms": target,
            "domino": space.format(found.spec),
            "domino_predicted": {"top1": found.fitness, "ms": found.cost},
            "random": space.format(randoms[0]) if randoms else None,
            "width": width.label,
            "pruned": prune.label,
        }
        log(key, plan[key])

    trained: dict[str, dict] = {}
    models: dict[str, object] = {}

    def add(name: str, model, teacher=None) -> None:
        models[name] = model
        trained[name] = train_named(name.replace(" ", "_"), model, data, teacher)

    add("mobilenetv2 x1.0", copy.deepcopy(base.model))
    add("mobilenetv2 x0.2", widths["width 0.2"])
    add("domino-aggressive", grafted(space.format(space.graft_all())))
    # the x0.2 network's latency lies below what grafting x1.0 reaches: Domino-Aggressive on x0.5 as well
    with seeded_torch(FINAL.seed):
        half = width_scaled(0.5, CLASSES, RESOLUTION)
    add("domino-aggressive on x0.5", graft_loaded(half, "all").model)
    for key, p in plan.items():
        add(f"{key} domino {p['domino']}", grafted(p["domino"]))
        if p["random"]:
            add(f"{key} random {p['random']}", grafted(p["random"]))
        add(f"{key} {p['width']}", widths[p["width"]])
        add(f"{key} {p['pruned']}", pruned(base.model, float(p["pruned"].split()[1]), RESOLUTION))
    # ablation at the middle target
    middle = plan["T0.5"]["domino"]
    teacher = models["mobilenetv2 x1.0"]
    ablation = {
        "train-first": f"T0.5 domino {middle}",
        "reparameterize-first": "ablation reparameterize-first",
        "train-first + KD": "ablation train-first KD",
        "reparameterize-first + KD": "ablation reparameterize-first KD",
    }
    add(ablation["reparameterize-first"], grafted(middle, first=True))
    add(ablation["train-first + KD"], grafted(middle), teacher=teacher)
    add(ablation["reparameterize-first + KD"], grafted(middle, first=True), teacher=teacher)

    final_ms = cached("final-latency", lambda: measure(models, runtime))
    rows = {name: {"measured_ms": final_ms[name], **trained[name]} for name in models}
    payload = {
        "machine": machine(),
        "wall_s": time.time() - start,
        "runtime": {"name": "ort-cpu", "batch": BATCH, "resolution": RESOLUTION, "threads": 1},
        "latency_predictor": {"curve": curve, "held_out": HELD_OUT, "range": latency_range},
        "accuracy_predictors": comparison,
        "target_spread": spread,
        "references_ms": ref_ms,
        "plan": plan,
        "results": rows,
        "ablation": {k: rows[v] for k, v in ablation.items()},
        "settings": {
            "proxy": PROXY.__dict__,
            "final": FINAL.__dict__,
            "pairs": {"proxy": N_PROXY, "shots": N_SHOTS, "held_out": N_HELD},
            "search": SEARCH.__dict__,
        },
    }
    write_results("domino", payload, markdown(payload))


def markdown(p: dict) -> str:
    m, f = p["machine"], p["settings"]["final"]
    lines = [
        "# Domino on this CPU (`python benchmarks/domino.py`)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), {p['wall_s'] / 60:.0f} min. torchvision MobileNetV2 (10 "
        f"classes) at 32x32, ort-cpu batch {BATCH}, one thread; every latency is the collapsed network's, the table's "
        f"measured round-robin in one session ({LOADS} loads, median). Training recipe of every network: {f['epochs']} "
        f"epochs on {f['images']} class-balanced CIFAR-10 images, SGD lr {f['lr']} cosine, batch {f['batch_size']}, "
        f"top-1 on {f['test_images']} test images (one seed).",
        "",
        f"## 1a. Mask latency predictor (MLP 128-64-1), {p['latency_predictor']['held_out']} held-out masks",
        "",
        "| masks fitted | Spearman | within 10% | MAPE % |",
        "|---|---|---|---|",
    ]
    for c in p["latency_predictor"]["curve"]:
        lines.append(f"| {c['n_train']} | {c['spearman']:.3f} | {c['within_10']:.0f}% | {c['mape']:.1f} |")
    lines += [
        "",
        f"## 1b. Accuracy predictors on {p['settings']['pairs']['held_out']} held-out target pairs "
        f"(adapted / trained on {p['settings']['pairs']['shots']} target pairs; {p['settings']['pairs']['proxy']} "
        "proxy masks)",
        "",
        "| predictor | RMSE (points) | Spearman |",
        "|---|---|---|",
    ]
    for name, r in p["accuracy_predictors"].items():
        lines.append(f"| {name} | {r['rmse']:.2f} | {r['spearman']:.2f} |")
    lo, hi = p["target_spread"]["target_top1"]
    lines += ["", f"Held-out target accuracies span {lo:.1f}-{hi:.1f}%.", "", "## 2. At three measured targets", ""]
    lines += ["| network | measured ms | test top-1 % |", "|---|---|---|"]
    for name, r in p["results"].items():
        if not name.startswith("ablation"):
            lines.append(f"| {name} | {r['measured_ms']:.3f} | {r['test_top1']:.2f} |")
    lines += ["", "Targets (ms): " + ", ".join(f"{k} = {v['target_ms']:.3f}" for k, v in p["plan"].items()), ""]
    lines += [
        "## 3. Train-First vs Reparameterize-First at T0.5",
        "",
        "| order | measured ms | top-1 % |",
        "|---|---|---|",
    ]
    for name, r in p["ablation"].items():
        lines.append(f"| {name} | {r['measured_ms']:.3f} | {r['test_top1']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

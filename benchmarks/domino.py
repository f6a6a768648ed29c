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

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import cached_json, log, machine, sample_efficiency, write_results

from edgenas._random import seeded_torch
from edgenas.compress.domino import (
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
from edgenas.compress.domino_job import FinalTraining
from edgenas.compress.peers import PRUNE_RATIOS, WIDTHS, fit_to_latency, pruned, width_scaled
from edgenas.evolution import EvolutionConfig
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.device import LocalDevice
from edgenas.hardware.measure import measure_modules
from edgenas.hardware.runtimes import get_runtime
from edgenas.models import graft_loaded, load_model
from edgenas.nn import reparameterize
from edgenas.predictors import table_from_store
from edgenas.predictors.meta import MetaConfig, compare_predictors
from edgenas.spaces.domino import mask_space
from edgenas.train import load_dataset, train

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-domino"
RESOLUTION, BATCH, CLASSES = 32, 8, 10
N_LATENCY, HELD_OUT = 400, 80
SAMPLE_SIZES = (25, 50, 100, 200, 320)
N_PROXY, N_SHOTS, N_HELD = 80, 10, 10
#: Target masks trained again with another seed (the training noise of one pair).
NOISE_MASKS = 3
PROXY = PairSchedule(epochs=3, images=5000, test_images=1000, resolution=16, batch_size=64, lr=0.1)
FINAL = FinalTraining(epochs=5, images=10000, test_images=1000, batch_size=64, lr=0.1, seed=0)
TARGET = PairSchedule(epochs=5, images=10000, test_images=1000, resolution=32, batch_size=64, lr=0.1, seed=0)
SEARCH = EvolutionConfig(population=50, iterations=20, top_k=10, seed=0)
#: Where the targets sit between the all-grafted (0) and the ungrafted (1) network's measured latency.
TARGET_SHARES = (0.25, 0.5, 0.75)
#: Every compared network is trained with these seeds (initialisation, order, augmentation); the ablation with the
#: first two.
SEEDS = (0, 1, 2)
#: The mask of the ablation: the first pass's Domino pick (a pass whose target mixed two sessions' units; as a fixed
#: mask of 7 grafted blocks it serves the ablation of the training order as well as any).
ABLATION_MASK = "00111010110001101"
ABLATION_SEEDS = (0, 1)
LOADS = 3


def cached(name: str, compute):
    return cached_json(RUNS, name, compute)


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
            LocalDevice(runtime, runtime.options),
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
    spread = {"target_top1": [float(held.y.min()) * 100, float(held.y.max()) * 100]}
    return comparison, accuracy, spread


def seed_noise(space, data) -> dict:
    """Two target masks trained again with another seed (initialisation, order, augmentation): how far one training
    of the same mask moves, against the spread of the target pairs."""
    table = PairTable(RUNS / "pairs.jsonl", space)
    first = table.get("target", TARGET)
    masks = list(first)[:NOISE_MASKS]
    again = collect_pairs(table, [space.make_spec(m) for m in masks], data, replace(TARGET, seed=1), "target")
    gaps = [abs(first[m][-1] - again[m][-1]) for m in masks]
    return {"masks": [space.format(space.make_spec(m)) for m in masks], "abs_difference": gaps}


def train_named(name: str, build, data, seed: int, teacher=None) -> dict:
    """Train a fresh ``build(seed)`` with the shared recipe at ``seed`` (cached); a diverged training is recorded."""

    def compute():
        from edgenas.errors import NonFiniteLossError

        log("training", name, "seed", seed)
        run = RUNS / "train" / f"{name}-s{seed}"
        config = replace(FINAL, seed=seed).train_config()
        try:
            resume = (run / "checkpoints" / "last.pt").is_file()  # a killed pass continues
            final = train(build(seed), data, config, run, input_size=RESOLUTION, teacher=teacher, resume=resume).final
        except NonFiniteLossError as exc:
            log(name, "diverged:", exc)
            return {"test_top1": None, "diverged": str(exc)}
        log(name, seed, final["test_top1"])
        return {"test_top1": final["test_top1"]}

    return cached(f"train-{name}-s{seed}".replace(" ", "_"), compute)


def fresh(ref: str):
    """A builder of a seeded fresh network from a model reference."""

    def build(seed: int):
        with seeded_torch(seed):
            return load_model(ref, num_classes=CLASSES, resolution=RESOLUTION)

    return build


def grafted(mask: str, *, first: bool = False, ref: str = "torchvision:mobilenet_v2"):
    return lambda seed: graft_loaded(fresh(ref)(seed), mask, reparameterize_first=first).model


def width_multiplier(w: float):
    return lambda seed: fresh(f"torchvision:mobilenet_v2?width_mult={w:g}")(seed).model


def pruned_at(ratio: float):
    """The network pruned from a seeded MobileNetV2 initialisation (structure from its magnitudes), then trained."""
    return lambda seed: pruned(fresh("torchvision:mobilenet_v2")(seed).model, ratio, RESOLUTION)


def _teacher(seed: int):
    """MobileNetV2 x1.0 trained with ``seed`` (its cached run's weights)."""
    from edgenas.train import load_checkpoint

    model = fresh("torchvision:mobilenet_v2")(seed).model
    model.load_state_dict(load_checkpoint(RUNS / "train" / f"mobilenetv2 x1.0-s{seed}" / "model.pt")["model"])
    return model


def _row(ms: float, runs: list[dict]) -> dict:
    """Measured latency and the test top-1 of each seed, their mean and range (diverged trainings counted apart)."""
    top1 = [r["test_top1"] for r in runs if r["test_top1"] is not None]
    return {
        "measured_ms": ms,
        "test_top1": top1,
        "mean_top1": float(np.mean(top1)) if top1 else None,
        "min_top1": min(top1, default=None),
        "max_top1": max(top1, default=None),
        "diverged": sum(r["test_top1"] is None for r in runs),
    }


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
    refs = {"ungrafted": base.model, "graft all": grafted("all")(FINAL.seed), **widths, **prunes}
    ref_ms = cached("reference-latency", lambda: measure(refs, runtime))
    log("references", ref_ms)
    comparison, accuracy, spread = accuracy_study(space, data)
    # A target is a share of the way from the all-grafted to the ungrafted network, read in each session's own units:
    # this VM's speed drifts by ~30% between sessions minutes apart (the mask profile, the reference ladder and the
    # final measurement are three sessions), so an absolute ms value from one session does not hold in another.
    predicted_graft, predicted_keep = latency([space.graft_all(), space.keep_all()])

    def ladder(names):
        return lambda models: [ref_ms[n] for n in names]

    plan: dict[str, dict] = {}
    for share in TARGET_SHARES:
        key = f"T{share:g}"
        predicted_t = predicted_graft + share * (predicted_keep - predicted_graft)
        reference_t = ref_ms["graft all"] + share * (ref_ms["ungrafted"] - ref_ms["graft all"])
        record = RUNS / f"search-v2-{key}.jsonl"
        found = search_masks(space, accuracy, latency, predicted_t, SEARCH, record=record).best
        randoms = random_masks(space, latency, predicted_t, 1, seed=int(share * 100))
        width, _ = fit_to_latency(list(widths.items()), ladder(list(widths)), reference_t)
        prune, _ = fit_to_latency(list(prunes.items()), ladder(list(prunes)), reference_t)
        plan[key] = {
            "share": share,
            "target_predicted_ms": predicted_t,
            "target_reference_ms": reference_t,
            "domino": space.format(found.spec),
            "domino_predicted": {"top1": found.fitness, "ms": found.cost},
            "random": space.format(randoms[0]) if randoms else None,
            "width": width.label,
            "pruned": prune.label,
        }
        log(key, plan[key])

    configs = {
        "mobilenetv2 x1.0": lambda seed: fresh("torchvision:mobilenet_v2")(seed).model,
        "mobilenetv2 x0.2": width_multiplier(0.2),
        "domino-aggressive": grafted("all"),
        # the x0.2 network's latency lies below what grafting x1.0 reaches: Domino-Aggressive on x0.5 as well
        "domino-aggressive on x0.5": grafted("all", ref="torchvision:mobilenet_v2?width_mult=0.5"),
    }
    for p in plan.values():
        configs[f"domino {p['domino']}"] = grafted(p["domino"])
        if p["random"]:
            configs[f"random {p['random']}"] = grafted(p["random"])
        configs[p["width"]] = width_multiplier(float(p["width"].split()[1]))
        configs[p["pruned"]] = pruned_at(float(p["pruned"].split()[1]))
    trained = {name: [train_named(name, build, data, seed) for seed in SEEDS] for name, build in configs.items()}
    # ablation at the middle target: Train-First / Reparameterize-First, each with and without distillation from
    # MobileNetV2 x1.0 trained with the same seed
    middle = ABLATION_MASK
    ablation_builds = {
        "train-first": (grafted(middle), False),
        "reparameterize-first": (grafted(middle, first=True), False),
        "train-first + KD": (grafted(middle), True),
        "reparameterize-first + KD": (grafted(middle, first=True), True),
    }
    ablation = {}
    for name, (build, distil) in ablation_builds.items():
        if name == "train-first":  # the Domino runs of this mask (cached from the first pass)
            ablation[name] = [train_named(f"domino {middle}", build, data, seed) for seed in ABLATION_SEEDS]
            continue
        ablation[name] = [
            train_named(f"ablation {name} {middle}", build, data, seed, _teacher(seed) if distil else None)
            for seed in ABLATION_SEEDS
        ]

    models = {name: build(0) for name, build in configs.items()}
    models.update({f"ablation {name}": build(0) for name, (build, _) in ablation_builds.items()})
    final_ms = cached("final-latency-v3", lambda: measure(models, runtime))
    for plan_row in plan.values():  # the target in the final session's units
        low, high = final_ms["domino-aggressive"], final_ms["mobilenetv2 x1.0"]
        plan_row["target_ms"] = low + plan_row["share"] * (high - low)
    noise = seed_noise(space, data)
    rows = {name: _row(final_ms[name], trained[name]) for name in configs}
    ablation_rows = {name: _row(final_ms[f"ablation {name}"], runs) for name, runs in ablation.items()}
    payload = {
        "machine": machine(),
        "wall_s": time.time() - start,
        "runtime": {"name": "ort-cpu", "batch": BATCH, "resolution": RESOLUTION, "threads": 1},
        "latency_predictor": {"curve": curve, "held_out": HELD_OUT, "range": latency_range},
        "accuracy_predictors": comparison,
        "target_spread": spread,
        "seed_noise": noise,
        "references_ms": ref_ms,
        "plan": plan,
        "results": rows,
        "ablation": ablation_rows,
        "settings": {
            "proxy": PROXY.__dict__,
            "final": FINAL.__dict__,
            "pairs": {"proxy": N_PROXY, "shots": N_SHOTS, "held_out": N_HELD},
            "search": SEARCH.__dict__,
        },
    }
    write_results("domino", payload, markdown(payload))


def _top1(r: dict) -> str:
    if r["mean_top1"] is None:
        return "diverged"
    spread = f" [{r['min_top1']:.1f}-{r['max_top1']:.1f}]" if len(r["test_top1"]) > 1 else ""
    failed = f", {r['diverged']} diverged" if r["diverged"] else ""
    return f"{r['mean_top1']:.1f}{spread}{failed}"


def markdown(p: dict) -> str:
    m, f = p["machine"], p["settings"]["final"]
    seeds = len(SEEDS)
    lines = [
        "# Domino on this CPU (`python benchmarks/domino.py`)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), {p['wall_s'] / 60:.0f} min for this pass (pairs and trainings "
        f"cached from earlier passes). torchvision MobileNetV2 (10 classes) at 32x32, ort-cpu batch {BATCH}, one "
        f"thread; every latency is the collapsed network's, the tables' measured round-robin in one session ({LOADS} "
        f"loads, median). Training recipe of every network: {f['epochs']} epochs on {f['images']} class-balanced "
        f"CIFAR-10 images from scratch, SGD lr {f['lr']} cosine, batch {f['batch_size']}, top-1 on {f['test_images']} "
        f"test images; mean [min-max] over {seeds} seeds (initialisation, order, augmentation).",
        "",
        f"## 1a. Mask latency predictor (MLP 128-64-1), {p['latency_predictor']['held_out']} held-out masks",
        "",
        "| masks fitted | Spearman | within 10% | MAPE % |",
        "|---|---|---|---|",
    ]
    for c in p["latency_predictor"]["curve"]:
        lines.append(f"| {c['n_train']} | {c['spearman']:.3f} | {c['within_10']:.1f}% | {c['mape']:.1f} |")
    pairs = p["settings"]["pairs"]
    lines += [
        "",
        f"## 1b. Accuracy predictors on {pairs['held_out']} held-out target pairs (adapted on / trained on "
        f"{pairs['shots']} target pairs; {pairs['proxy']} proxy masks x 3 epoch budgets)",
        "",
        "| predictor | RMSE (points) | Spearman |",
        "|---|---|---|",
    ]
    for name, r in p["accuracy_predictors"].items():
        lines.append(f"| {name} | {r['rmse']:.2f} | {r['spearman']:.2f} |")
    lo, hi = p["target_spread"]["target_top1"]
    gaps = p["seed_noise"]["abs_difference"]
    lines += [
        "",
        f"Held-out target accuracies span {lo:.1f}-{hi:.1f}%; the same mask trained with another seed moved by "
        + ", ".join(f"{g:.1f}" for g in gaps)
        + f" points ({len(gaps)} masks).",
        "",
        "## 2. At three measured targets",
        "",
        "A target T_s lies a share s of the way from the all-grafted network's latency to the ungrafted one's, read in "
        "each session's units (this VM drifts by ~30% between sessions): the search used the predictor's units, the "
        "width and pruning ladders the reference session's, the table below the final round-robin session's "
        "(all networks measured together).",
        "",
        "| target | method | network | measured ms | meets T | top-1 % |",
        "|---|---|---|---|---|---|",
    ]
    rows = p["results"]
    for key, plan in p["plan"].items():
        entries = [
            ("Domino", f"domino {plan['domino']}"),
            ("random mask", f"random {plan['random']}" if plan["random"] else None),
            ("Domino-Aggressive", "domino-aggressive"),
            ("width multiplier", plan["width"]),
            ("torch-pruning", plan["pruned"]),
        ]
        for method, name in entries:
            if name is None:
                continue
            r = rows[name]
            meets = "yes" if r["measured_ms"] <= plan["target_ms"] else "no"
            lines.append(
                f"| {key} = {plan['target_ms']:.3f} ms | {method} | {name} | {r['measured_ms']:.3f} | {meets} | "
                f"{_top1(r)} |"
            )
    lines += ["", "| reference | measured ms | top-1 % |", "|---|---|---|"]
    for name in ("mobilenetv2 x1.0", "mobilenetv2 x0.2", "domino-aggressive on x0.5"):
        lines.append(f"| {name} | {rows[name]['measured_ms']:.3f} | {_top1(rows[name])} |")
    lines += [
        "",
        f"## 3. Train-First vs Reparameterize-First (mask {ABLATION_MASK}; KD from MobileNetV2 "
        f"x1.0 trained with the same seed; {len(ABLATION_SEEDS)} seeds)",
        "",
        "| order | measured ms | top-1 % |",
        "|---|---|---|",
    ]
    for name, r in p["ablation"].items():
        lines.append(f"| {name} | {r['measured_ms']:.3f} | {_top1(r)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

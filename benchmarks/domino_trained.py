"""Issue 31 §1-§3: Domino where it is meant to work — compressing a *trained* MobileNetV2 x1.0 (CIFAR-10, 32 px,
``benchmarks/domino_start.py``), every compared network fine-tuned from the same weights with the same budget.

Steps (each cached under ``runs/bench-domino/trained``: a killed pass resumes; results are rewritten after each):

1. Latency: ``N_LATENCY`` masks profiled after collapse (ort-cpu, batch 8, one thread; each session beside the mask
   space's reference), an MLP fitted on them; then one calibration session (``edgenas.compress.domino_session``):
   the ungrafted, the all-grafted and spread masks timed beside the ungrafted network, the predictor rescaled.
2. Seed spread: one mask (the random mask of the middle target) fine-tuned with ``SEEDS``: how far a fine-tuned
   mask's top-1 moves between seeds, i.e. what differences ``len(SEEDS)`` seeds resolve.
3. Pairs: proxy pairs (from scratch, 16 px, the library's proxy schedule) and target pairs (fine-tuned from the
   trained weights with the fine-tuning recipe, no distillation); MAML adapted on ``N_SHOTS`` of them.
4. At three targets — shares of the way from the all-grafted to the ungrafted network's latency, as ratios to the
   ungrafted network measured in the calibration session — Domino (the evolution on the calibrated latency and MAML
   predictors, landed by the closed loop beside the ungrafted network), Domino-Pro (the same mask, widened grafted
   blocks while fine-tuning), a random mask predicted to meet T, torch-pruning (MetaPruner L2 from the trained
   weights, the largest ratio ladder step meeting T measured beside the ungrafted network); Domino-Aggressive (all
   grafted) once. Every network fine-tuned from the trained weights with distillation from them (Train-First),
   ``FINETUNE``, with each of ``SEEDS``; then all collapsed and timed beside the ungrafted network in one session.
5. The accuracy predictors on ``N_HELD`` held-out target pairs (thesis Fig 5.6: MAML vs target-only, transfer,
   fine-tune).

The width multiplier is not in the table: from scratch it needs the starting point's 20 full epochs per network
and seed (~1 h each here). Usage: ``EDGENAS_DATA=DIR python benchmarks/domino_trained.py`` (runs alone: it
measures latency; rerun to resume). Writes ``benchmarks/results/domino_trained.{json,md}``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import cached_json, log, machine, write_results

from edgenas.compress.domino import (
    PROXY_SCHEDULE,
    PairSchedule,
    PairTable,
    PredictedAccuracy,
    collect_pairs,
    final_task,
    measure_masks,
    predicted_latency,
    proxy_tasks,
    random_masks,
    search_masks,
)
from edgenas.compress.domino_job import FinalTraining
from edgenas.compress.domino_session import SessionCalibration, calibrate_masks, calibrated
from edgenas.compress.peers import pruned
from edgenas.evolution import EvolutionConfig
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.device import LocalDevice, latency_fn
from edgenas.hardware.reference import Anchor
from edgenas.hardware.runtimes import get_runtime
from edgenas.models import graft_loaded, load_model
from edgenas.nn import reparameterize
from edgenas.nn.graft import DominoPro
from edgenas.predictors import Predictor, fit_on_store
from edgenas.predictors.meta import MetaConfig, compare_predictors
from edgenas.search.closed_loop import Band
from edgenas.search.landing import LandingPolicy, land_found
from edgenas.spaces.domino import mask_space
from edgenas.train import load_dataset, train

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "runs" / "bench-domino" / "start" / "mbv2"
RUNS = ROOT / "runs" / "bench-domino" / "trained"
RESOLUTION, BATCH = 32, 8
N_LATENCY = 200
N_PROXY, N_SHOTS, N_HELD = 60, 10, 10
SPREAD_MASKS = 6
#: Every compared network: one epoch on 10,000 class-balanced training images from the trained weights, SGD lr 0.01
#: cosine, batch 64, distilled from the trained network (weight 0.5, tau 4); top-1 on the full test set.
FINETUNE = FinalTraining(epochs=1, images=10000, test_images=0, batch_size=64, lr=0.01, seed=0)
#: The target pairs: the same schedule without distillation, top-1 on 2,000 test images.
TARGET = PairSchedule(epochs=1, images=10000, test_images=2000, resolution=RESOLUTION, batch_size=64, lr=0.01)
SEARCH = EvolutionConfig(population=50, iterations=20, top_k=10, seed=0)
PROXY = PROXY_SCHEDULE
LANDING = LandingPolicy(budget=12, tolerance=0.02, loads=3)
TARGET_SHARES = (0.25, 0.5, 0.75)
SEEDS = (0, 1, 2)
PRO = DominoPro(width=2.0)
#: Learning rates tried for Reparameterize-First (the from-scratch pass: lr 0.1 stayed at chance).
RF_LRS = (0.001, 0.003, 0.01, 0.03)
#: torch-pruning's ladder: ratios 0.05 apart (the library's 0.1 steps left the pick up to 10% under T).
PRUNE_STEPS = tuple(round(0.05 * i, 2) for i in range(1, 19))


def cached(name: str, compute: Any) -> Any:
    return cached_json(RUNS, name, compute)  # RUNS read at call time (--smoke moves it)


class Bench:
    """The shared state of one pass: the trained start, its mask space, the data, the device, the predictors."""

    def __init__(self) -> None:
        RUNS.mkdir(parents=True, exist_ok=True)
        self.start = load_model(START)
        self.space = mask_space(self.start.recipe)
        self.data = load_dataset(None, image_size=RESOLUTION)
        runtime = get_runtime("ort-cpu", RuntimeOptions(batch=BATCH, resolution=RESOLUTION, threads=1))
        self.device = LocalDevice(runtime, runtime.options)
        self.results: dict[str, Any] = {"machine": machine(), "start": _start_record()}

    # -- 1. latency --
    def latency(self) -> Any:
        path = RUNS / "latency.pt"
        if not path.is_file():
            with MeasurementStore(RUNS / "store.db") as db:
                name = measure_masks(self.space, self.device, db, N_LATENCY, seed=0, device_name="here")
            fit_on_store(self.space, RUNS / "store.db", name, seed=0).save(path)
        predictor = Predictor.load(path)
        self.results["latency_predictor"] = {k: float(v) for k, v in predictor.meta.scores.get("test", {}).items()}
        return predicted_latency(predictor, self.space)

    def calibrate(self, latency: Any) -> SessionCalibration:
        record = cached(
            "calibration",
            lambda: calibrate_masks(self.space, latency, self.device, spread=SPREAD_MASKS, loads=3).as_dict(),
        )
        self.results["calibration"] = record
        return SessionCalibration.from_dict(record)

    # -- fine-tuning --
    def finetune(
        self,
        name: str,
        mask: str | None,
        seed: int,
        *,
        pro: bool = False,
        model: Any = None,
        first: bool = False,
        lr: float | None = None,
    ) -> float | None:
        """Top-1 (%) of ``mask`` grafted into the trained net (or ``model``) after :data:`FINETUNE` with ``seed``
        (``first``: Reparameterize-First; ``lr``: another peak learning rate); None where the loss diverged."""
        from edgenas.errors import NonFiniteLossError

        def compute() -> dict[str, float | None]:
            log("fine-tuning", name, "seed", seed)
            run = RUNS / "finetune" / f"{name}-s{seed}"
            if model is not None:
                net, recipe = copy.deepcopy(model), None
            else:
                start = copy.deepcopy(self.start)
                grafted = graft_loaded(start, mask, pro=PRO if pro else None, reparameterize_first=first)
                net, recipe = grafted.model, grafted.recipe
            config = FinalTraining(**{**FINETUNE.__dict__, "seed": seed, "lr": lr or FINETUNE.lr}).train_config()
            resume = (run / "checkpoints" / "last.pt").is_file()
            teacher = copy.deepcopy(self.start.model).eval()
            try:
                result = train(
                    net, self.data, config, run, recipe=recipe, input_size=RESOLUTION, teacher=teacher, resume=resume
                )
            except NonFiniteLossError as exc:
                log(name, seed, "diverged:", exc)
                return {"test_top1": None}
            log(name, seed, result.final["test_top1"])
            return {"test_top1": float(result.final["test_top1"])}

        return cached(f"ft-{name}-s{seed}".replace(" ", "_"), compute)["test_top1"]

    def row(self, name: str, mask: str | None, **options: Any) -> dict[str, Any]:
        """One table row: the network's name and its fine-tuned top-1 with every seed (:func:`stats`)."""
        return {"network": name, **stats([self.finetune(name, mask, seed, **options) for seed in SEEDS])}

    # -- 3. pairs --
    def pairs(self) -> tuple[dict, dict]:
        table = PairTable(RUNS / "pairs.jsonl", self.space)
        report = lambda d, t, s, top1: log(f"pair {d}/{t} {self.space.format(s)} {top1[-1]:.1f}%")  # noqa: E731
        proxy = collect_pairs(table, self.space.sample(seed=1, n=N_PROXY), self.data, PROXY, "proxy", on_pair=report)
        target = collect_pairs(
            table,
            self.space.sample(seed=2, n=N_SHOTS),
            self.data,
            TARGET,
            "target-finetuned",
            start=self.start.model,
            on_pair=report,
        )
        return proxy, target


def _start_record() -> dict[str, Any]:
    if not (START / "metrics.jsonl").is_file():  # --smoke: an untrained model file
        return {"run": str(START), "epochs": 0, "test_top1": float("nan")}
    lines = (START / "metrics.jsonl").read_text().splitlines()
    epochs = [r for r in map(json.loads, lines) if r.get("kind") == "epoch"]
    return {
        "run": str(START.relative_to(ROOT)) if START.is_relative_to(ROOT) else str(START),
        "epochs": len(epochs),
        "test_top1": epochs[-1]["test_top1"],
    }


def stats(values: list[float | None]) -> dict[str, Any]:
    """Each seed's top-1, their mean and sample std (diverged trainings counted apart)."""
    kept = [v for v in values if v is not None]
    return {
        "top1": values,
        "mean": float(np.mean(kept)) if kept else None,
        "std": float(np.std(kept, ddof=1)) if len(kept) > 1 else None,
        "diverged": len(values) - len(kept),
    }


def choose_masks(bench: Bench, latency: Any, session: SessionCalibration, accuracy: Any) -> dict[str, dict]:
    """Per target: T as a ratio, Domino's searched and landed mask, a random mask, the pruning ratio."""
    space = bench.space
    graft_all_ratio = next(m["ratio"] for m in session.masks if m["mask"] == space.format(space.graft_all()))
    prune_ratios = cached("prune-ladder", lambda: prune_ladder(bench, session))
    plan = {}
    for share in TARGET_SHARES:
        key = f"T{share:g}"
        ratio = graft_all_ratio + share * (1 - graft_all_ratio)
        target = ratio * session.level_ms

        def compute(target=target, share=share) -> dict[str, Any]:
            found = search_masks(space, accuracy, latency, target, SEARCH, record=RUNS / f"search-{share:g}.jsonl")
            device = bench.device.with_anchor(session.anchor(space))
            band = Band(target, LANDING.tolerance, "le")
            loop = land_found(found.best.spec, latency.predictor, band, latency_fn(device, LANDING.loads), LANDING)
            # the random baseline is landed the same way: the comparison is of the masks the search prefers
            drawn = random_masks(space, latency, target, 1, seed=int(share * 100))[0]
            randomly = land_found(drawn, latency.predictor, band, latency_fn(device, LANDING.loads), LANDING)
            return {
                "searched": space.format(found.best.spec),
                "domino": space.format(loop.chosen),
                "landing": loop.verdict,
                "landed_ratio": loop.value / session.level_ms,
                "random_drawn": space.format(drawn),
                "random": space.format(randomly.chosen),
                "random_landing": randomly.verdict,
            }

        chosen = cached(f"plan-{key}", compute)
        meeting = [r for r, q in prune_ratios.items() if q <= ratio]
        plan[key] = {
            "share": share,
            "target_ratio": ratio,
            **chosen,
            "pruned": min(meeting, key=float) if meeting else None,
        }
        log(key, plan[key])
    return plan


def prune_ladder(bench: Bench, session: SessionCalibration) -> dict[str, float]:
    """Each pruning ratio's network (from the trained weights) timed beside the ungrafted network: its ratio."""
    models = [pruned(bench.start.model, r, RESOLUTION) for r in PRUNE_STEPS]
    device = bench.device.with_anchor(Anchor(bench.start.model, session.level_ms, "ungrafted"))
    rows = device.measure(models, loads=3, labels=[f"pruned {r:g}" for r in PRUNE_STEPS])
    return {f"{r:g}": float(row.relative) for r, row in zip(PRUNE_STEPS, rows, strict=True)}


def main() -> None:
    start = time.time()
    bench = Bench()
    results = bench.results
    latency = bench.latency()
    session = bench.calibrate(latency)
    scaled = calibrated(latency, bench.space, session.factor)
    log("calibration", {k: session.as_dict()[k] for k in ("level_ms", "factor", "session_ms")})
    # 2. seed spread of one fine-tuned mask (the middle target's random mask)
    middle_ratio = 0.5 * (1 + next(m["ratio"] for m in session.masks if "1" not in m["mask"]))
    spread_mask = bench.space.format(random_masks(bench.space, scaled, middle_ratio * session.level_ms, 1, seed=50)[0])
    results["seed_spread"] = {
        "mask": spread_mask,
        **stats([bench.finetune(f"random {spread_mask}", spread_mask, s) for s in SEEDS]),
    }
    publish(results, start)
    # 3.-4. the plan, its networks measured in one session, then each fine-tuned with every seed
    proxy, target = bench.pairs()
    shots = final_task(target, "shots")
    accuracy = PredictedAccuracy.meta_learned(bench.space, proxy_tasks(proxy), shots, MetaConfig(shots=N_SHOTS))
    plan = choose_masks(bench, scaled, session, accuracy)
    results["plan"] = plan
    results["measured"] = cached("final-latency", lambda: final_session(bench, session, plan))
    table: dict[str, dict] = {}
    for key, p in plan.items():
        table[key] = {
            "Domino": bench.row(f"domino {p['domino']}", p["domino"]),
            "random mask": bench.row(f"random {p['random']}", p["random"]),
        }
        if p["pruned"]:
            pruned_net = pruned(bench.start.model, float(p["pruned"]), RESOLUTION)
            table[key]["torch-pruning"] = bench.row(f"pruned {p['pruned']}", None, model=pruned_net)
        results["table"] = table
        publish(results, start)
    # 5. the accuracy predictors on held-out target pairs
    table_ = PairTable(RUNS / "pairs.jsonl", bench.space)
    held = collect_pairs(
        table_, bench.space.sample(seed=3, n=N_HELD), bench.data, TARGET, "target-finetuned", start=bench.start.model
    )
    results["accuracy_predictors"] = compare_predictors(
        proxy_tasks(proxy), shots, final_task(held, "held-out"), MetaConfig(shots=N_SHOTS)
    )
    publish(results, start)
    # then Domino-Aggressive, Domino-Pro and the training order
    all_mask = bench.space.format(bench.space.graft_all())
    results["aggressive"] = {**bench.row("domino-aggressive", all_mask), "mask": all_mask}
    publish(results, start)
    for key, p in plan.items():
        table[key]["Domino-Pro"] = bench.row(f"domino-pro {p['domino']}", p["domino"], pro=True)
        publish(results, start)
    results["order"] = training_order(bench, plan, table)
    publish(results, start)


def training_order(bench: Bench, plan: dict, table: dict) -> dict[str, Any]:
    """Thesis Fig 5.15 at the middle target's Domino mask: Reparameterize-First (the collapsed conv trains) at the
    learning rate of :data:`RF_LRS` that trains best (seed 0), then with every seed; Train-First is the table's
    Domino row."""
    key = f"T{TARGET_SHARES[len(TARGET_SHARES) // 2]:g}"
    mask = plan[key]["domino"]
    sweep = {f"{lr:g}": bench.finetune(f"rf-lr{lr:g} {mask}", mask, SEEDS[0], first=True, lr=lr) for lr in RF_LRS}
    trained = [k for k, v in sweep.items() if v is not None]
    best = max(trained, key=lambda k: sweep[k]) if trained else None
    first = (
        stats([bench.finetune(f"rf-lr{best} {mask}", mask, s, first=True, lr=float(best)) for s in SEEDS])
        if best
        else None
    )
    return {
        "target": key,
        "mask": mask,
        "rf_lr_sweep": sweep,
        "rf_lr": best,
        "train_first": table[key]["Domino"],
        "reparameterize_first": first,
    }


def final_session(bench: Bench, session: SessionCalibration, plan: dict) -> dict[str, float]:
    """Every compared network collapsed and timed beside the ungrafted one in one session: its ratio."""
    networks: dict[str, Any] = {}
    for p in plan.values():
        for mask in (p["domino"], p["random"]):
            networks[mask] = reparameterize(graft_loaded(copy.deepcopy(bench.start), mask).model)
        if p["pruned"]:
            networks[f"pruned {p['pruned']}"] = pruned(bench.start.model, float(p["pruned"]), RESOLUTION)
    all_mask = bench.space.format(bench.space.graft_all())
    networks[all_mask] = reparameterize(graft_loaded(copy.deepcopy(bench.start), all_mask).model)
    device = bench.device.with_anchor(Anchor(bench.start.model, session.level_ms, "ungrafted"))
    rows = device.measure(list(networks.values()), loads=3, labels=list(networks))
    return {name: float(row.relative) for name, row in zip(networks, rows, strict=True)}


def publish(results: dict, start: float) -> None:
    if SMOKE:
        (RUNS / "smoke.md").write_text(markdown(results))
        return
    results["wall_s"] = time.time() - start
    results["settings"] = {
        "finetune": FINETUNE.__dict__,
        "target_pairs": TARGET.__dict__,
        "proxy": PROXY.__dict__,
        "pairs": {"proxy": N_PROXY, "shots": N_SHOTS, "held_out": N_HELD},
        "latency_masks": N_LATENCY,
        "search": SEARCH.__dict__,
        "seeds": list(SEEDS),
        "runtime": {"name": "ort-cpu", "batch": BATCH, "resolution": RESOLUTION, "threads": 1},
    }
    write_results("domino_trained", results, markdown(results))


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Domino on a trained MobileNetV2 (`python benchmarks/domino_trained.py`; issue 31)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), {m['date']}. Start: `{r['start']['run']}`, torchvision "
        f"MobileNetV2 x1.0 trained {r['start']['epochs']} epochs on full CIFAR-10 at 32 px "
        f"(`benchmarks/results/domino_start.md`): **{r['start']['test_top1']:.2f}%** top-1. Every compared network "
        "is fine-tuned from those weights for 1 epoch on 10,000 images (SGD lr 0.01 cosine, batch 64, distilled from "
        "the trained net: weight 0.5, tau 4) and tested on the full test set (10,000 images); mean ± std over "
        f"{len(SEEDS)} seeds. Latency: ort-cpu, batch {BATCH}, one thread, collapsed networks, as ratios to the "
        "ungrafted network timed beside them.",
        "",
    ]
    if "calibration" in r:
        c = r["calibration"]
        lines += [
            "## Calibration session",
            "",
            f"Ungrafted {c['session_ms']:.3f} ms in the session; the mask predictor (fitted on {N_LATENCY} masks, "
            f"held-out {_scores(r)}) rescaled x{c['factor']:.3f}.",
            "",
            "| mask | predicted ms | ratio to ungrafted | measured ms | calibrated ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in c["masks"]:
            lines.append(
                f"| `{row['mask']}` | {row['predicted_ms']:.3f} | {row['ratio']:.3f} | {row['measured_ms']:.3f} | "
                f"{row['calibrated_ms']:.3f} |"
            )
        lines.append("")
    if "seed_spread" in r:
        s = r["seed_spread"]
        lines += [
            "## Seed spread of one fine-tuned mask",
            "",
            f"Mask `{s['mask']}` fine-tuned with seeds {list(SEEDS)}: top-1 "
            + ", ".join(f"{v:.2f}" for v in s["top1"])
            + f" — mean {s['mean']:.2f} ± {s['std']:.2f} (std). With n = {len(SEEDS)} a difference of means is "
            f"resolved (two standard errors of the difference) above {2 * s['std'] * (2 / len(SEEDS)) ** 0.5:.2f} "
            "points.",
            "",
        ]
    if "table" in r:
        lines += _table(r)
    if "order" in r:
        o = r["order"]
        sweep = ", ".join(f"lr {k}: {'diverged' if v is None else f'{v:.2f}%'}" for k, v in o["rf_lr_sweep"].items())
        lines += [
            f"## Training order at {o['target']} (mask `{o['mask']}`; thesis Fig 5.15)",
            "",
            f"Reparameterize-First learning rate (seed {SEEDS[0]}): {sweep}.",
            "",
            "| order | lr | top-1 % (mean ± std) | seeds |",
            "|---|---:|---|---|",
            _order_row("Train-First (Domino)", f"{FINETUNE.lr:g}", o["train_first"]),
        ]
        if o["reparameterize_first"]:
            lines.append(_order_row("Reparameterize-First", o["rf_lr"], o["reparameterize_first"]))
        lines.append("")
    if "accuracy_predictors" in r:
        lines += [
            f"## Accuracy predictors on {N_HELD} held-out fine-tuned target pairs (Fig 5.6)",
            "",
            "| predictor | RMSE (points) | Spearman |",
            "|---|---:|---:|",
        ]
        for name, v in r["accuracy_predictors"].items():
            lines.append(f"| {name} | {v['rmse']:.2f} | {v['spearman']:.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def versus_best_peer(rows: dict[str, dict]) -> dict[str, Any] | None:
    """Domino minus the peer of highest mean top-1 (random mask, torch-pruning), seed by seed (the same seed gives
    both the same data order): the mean difference and its 95% t interval; resolved when it excludes 0."""
    from scipy.stats import t as student

    peers = {m: r for m, r in rows.items() if m in ("random mask", "torch-pruning") and r["mean"] is not None}
    domino = rows.get("Domino")
    if not peers or domino is None or domino["diverged"]:
        return None
    best = max(peers, key=lambda m: peers[m]["mean"])
    pairs = [(a, b) for a, b in zip(domino["top1"], peers[best]["top1"], strict=True) if b is not None]
    diff = np.array([a - b for a, b in pairs])
    half = float(student.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else np.nan
    mean = float(diff.mean())
    return {
        "peer": best,
        "n": len(diff),
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "resolved": bool(mean - half > 0 or mean + half < 0),
    }


def _order_row(name: str, lr: str, row: dict) -> str:
    return f"| {name} | {lr} | {_mean(row)} | " + ", ".join(_top1(v) for v in row["top1"]) + " |"


def _mean(row: dict) -> str:
    if row["mean"] is None:
        return "diverged"
    std = "-" if row["std"] is None else f"{row['std']:.2f}"
    return f"{row['mean']:.2f} ± {std}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")


def _top1(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.2f}"


def _scores(r: dict) -> str:
    s = r.get("latency_predictor", {})
    return ", ".join(f"{k} {v:.3f}" for k, v in s.items() if k in ("spearman", "mape", "within_10")) or "-"


def _table(r: dict) -> list[str]:
    measured = r.get("measured", {})
    lines = [
        "## At three targets (ratio to the ungrafted network)",
        "",
        "| target | method | network | measured ratio | meets T (+2%) | top-1 % (mean ± std) | seeds |",
        "|---|---|---|---:|---|---|---|",
    ]
    for key, rows in r["table"].items():
        ratio = r["plan"][key]["target_ratio"]
        for method, row in rows.items():
            name = (
                row["network"].split(" ", 1)[1] if row["network"].startswith(("domino", "random")) else row["network"]
            )
            q = measured.get(name)
            meets = "-" if q is None else ("yes" if q <= ratio * 1.02 else "no")
            qtext = "-" if q is None else f"{q:.3f}"
            lines.append(
                f"| {key} = {ratio:.3f} | {method} | `{row['network']}` | {qtext} | {meets} | {_mean(row)} | "
                + ", ".join(_top1(v) for v in row["top1"])
                + " |"
            )
    if "aggressive" in r:
        a = r["aggressive"]
        q = measured.get(a["mask"])
        lines.append(
            f"| — | Domino-Aggressive | all grafted | {'-' if q is None else f'{q:.3f}'} | — | "
            f"{_mean(a)} | " + ", ".join(_top1(v) for v in a["top1"]) + " |"
        )
    lines += ["", "| target | Domino − best peer (points) | 95% t interval | n | resolved |", "|---|---|---|---|---|"]
    for key, rows in r["table"].items():
        v = versus_best_peer(rows)
        if v is not None:
            lines.append(
                f"| {key} | {v['mean']:+.2f} vs {v['peer']} | [{v['low']:+.2f}, {v['high']:+.2f}] | {v['n']} | "
                f"{'yes' if v['resolved'] else 'no'} |"
            )
    lines.append("")
    return lines


def smoke(folder: Path) -> None:
    """Shrink every count and point the start and the cache into ``folder``: a few minutes' check of the whole
    script's plumbing on an untrained network (writes ``folder/smoke.md``, no results)."""
    global START, RUNS, N_LATENCY, N_PROXY, N_SHOTS, N_HELD, SPREAD_MASKS, FINETUNE, TARGET, SEARCH, SEEDS, SMOKE, PROXY
    from edgenas.models import save_model_file

    folder.mkdir(parents=True, exist_ok=True)
    START = folder / "start"
    START.mkdir(exist_ok=True)
    save_model_file(START / "model.pt", load_model("torchvision:mobilenet_v2", num_classes=10, resolution=RESOLUTION))
    RUNS, SMOKE = folder / "runs", True
    N_LATENCY, N_PROXY, N_SHOTS, N_HELD, SPREAD_MASKS = 12, 20, 3, 3, 2
    FINETUNE = FinalTraining(epochs=1, images=100, test_images=100, batch_size=50, lr=0.01, seed=0)
    TARGET = PairSchedule(epochs=1, images=100, test_images=100, resolution=RESOLUTION, batch_size=50, lr=0.01)
    SEARCH = EvolutionConfig(population=4, iterations=2, top_k=2, seed=0)
    SEEDS = (0, 1)
    PROXY = PairSchedule(epochs=2, images=40, test_images=40, resolution=16, batch_size=20)


SMOKE = False

if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", type=Path, help="check the plumbing in this folder with tiny counts")
    if (options := parser.parse_args()).smoke:
        smoke(options.smoke)
    main()

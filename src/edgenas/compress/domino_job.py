"""Domino end to end on one network (``edgenas compress domino``): the predictors, the search, then the grafted
network trained, collapsed, exported and measured.

Steps, each resumable from the run directory:

1. ``latency``: :data:`DominoJob.latency_masks` masks measured after collapse on the runtime into ``store.db``;
   an MLP 128-64-1 fitted on 80% of them (``latency.pt``; held-out scores in the summary).
2. ``pairs``: proxy pairs (``proxy_masks`` masks on the cheap schedule) and target pairs (``target_masks`` masks
   trained like the final network: from scratch, or fine-tuned from the given weights when they are trained) in
   ``pairs.jsonl`` (a killed collection loses at most the mask in training).
3. ``accuracy``: MAML meta-trained on the proxy tasks and adapted on the target pairs (seeded: recomputed, seconds).
4. ``calibrate`` (issue 31 §3): the ungrafted, the all-grafted and a few spread masks timed beside the ungrafted
   network; the predictor rescaled to that session, T read at its level (``calibration.json``;
   :mod:`edgenas.compress.domino_session`).
5. ``search``: the evolution under calibrated latency <= T (``evaluated.jsonl``), its best mask landed on T measured
   beside the ungrafted network (the closed loop, ``landing.json``); Domino-Aggressive grafts every block instead.
6. ``train``: the chosen mask grafted into the given network (its weights kept when it is trained; Domino-Pro's wider
   blocks start fresh), trained Train-First (or Reparameterize-First), optionally distilled from a teacher
   (``train/``, resumable like every ``edgenas train`` run); ``model.pt`` is the grafted model file.
7. ``deploy``: collapsed, exported to ``model.onnx`` (outputs verified against the trained grafted network in ONNX
   Runtime), timed beside the ungrafted network: judged by that ratio (T / the calibration's level); ``summary.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgenas import rundir
from edgenas._io import write_text_atomic
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
    search_masks,
)
from edgenas.compress.domino_session import SessionCalibration, calibrate_masks, calibrated, deployed_ratio
from edgenas.errors import DominoError
from edgenas.evolution import EvolutionConfig
from edgenas.predictors.base import CachedPredictor
from edgenas.predictors.meta import MetaConfig
from edgenas.search.landing import LandingPolicy
from edgenas.spaces import ArchSpec
from edgenas.spaces.domino import MaskSpace, mask_space
from edgenas.train.data import ImageData

ORDERS = ("train-first", "reparameterize-first")
STORE_FILE = "store.db"
LATENCY_FILE = "latency.pt"
PAIRS_FILE = "pairs.jsonl"
EVALUATED_FILE = "evaluated.jsonl"
LANDING_FILE = "landing.json"
CALIBRATION_FILE = "calibration.json"
MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
SUMMARY_FILE = rundir.SUMMARY_FILE
#: Masks measured for the latency predictor by default: 200 fitted + 50 held out. On this CPU
#: (benchmarks/results/domino.md, MobileNetV2 at 32 px, batch 8) the held-out share within +-10% rose 87.5 -> 95 ->
#: 98.8% and Spearman 0.92 -> 0.95 -> 0.95 from 50 to 100 to 200 fitted masks, and no further at 320.
DEFAULT_LATENCY_MASKS = 250
#: The exported collapsed network may differ from the trained grafted one by this much (relative, float32).
ONNX_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FinalTraining:
    """How the chosen grafted network is trained (the same recipe serves every peer in a comparison).

    Attributes: epochs, images (class-balanced training subset; 0 = all), test_images (0 = all), batch_size, lr
    (peak, SGD momentum 0.9, cosine), seed.
    """

    epochs: int = 10
    images: int = 0
    test_images: int = 0
    batch_size: int = 64
    lr: float = 0.05
    seed: int = 0

    def check(self) -> None:
        if min(self.epochs, self.batch_size) < 1 or min(self.images, self.test_images) < 0 or not self.lr > 0:
            raise DominoError("final training: epochs and batch size must be >= 1, image counts >= 0, lr > 0")
        if self.images and self.batch_size > self.images:
            raise DominoError(f"final training: batch size {self.batch_size} exceeds the {self.images} images")

    def train_config(self, *, distill_weight: float = 0.5) -> Any:
        from edgenas.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            train_subset=self.images or None,
            test_subset=self.test_images or None,
            log_every=0,
            distill_weight=distill_weight,
        )


@dataclass(frozen=True)
class DominoJob:
    """Settings of one Domino run (defaults: CPU-sized; thesis counts in the comments).

    Attributes:
        target_ms: the latency budget T (ms on the runtime, at its batch size), read at the calibration's level (the
            ungrafted network's latency in that session, or at the device anchor's nominal level); or
        target_ratio: T as a share of the ungrafted network's latency (one of the two is > 0).
        calibration_masks: masks spread over the predicted range timed beside the ungrafted network before the
            search, besides the ungrafted and the all-grafted one (issue 31 §3).
        latency_masks: masks measured for the latency predictor (thesis 1,000; see :data:`DEFAULT_LATENCY_MASKS`).
        proxy_masks: masks trained on the proxy schedule (thesis 1,000).
        target_masks: masks trained on the target schedule, the shots the meta-predictor adapts on (thesis 10).
        proxy: the proxy task's schedule (the target pairs are trained like the final network: ``final`` at the
            network's resolution, so the predictor predicts the accuracy the final training gives).
        meta: MAML settings.
        evolution: population, iterations, top-k, rates, seed.
        final: the training of the chosen grafted network.
        order: ``train-first`` (thesis) or ``reparameterize-first`` (the ablation of Fig 5.15).
        aggressive: Domino-Aggressive: graft every block, no search.
        pro_width: Domino-Pro: widen the grafted blocks' inner convs by this factor while training (None = off).
        distill_weight: weight of the distillation term when a teacher is given.
        landing: how the searched mask is brought onto T measured on the device before it is trained
            (:func:`edgenas.search.landing.land_found`, ``le``: at most T + its tolerance; ``measure``: once).
    """

    target_ms: float = 0.0
    target_ratio: float = 0.0
    calibration_masks: int = 4
    latency_masks: int = DEFAULT_LATENCY_MASKS
    proxy_masks: int = 100
    target_masks: int = 10
    proxy: PairSchedule = PROXY_SCHEDULE
    meta: MetaConfig = field(default_factory=MetaConfig)
    evolution: EvolutionConfig = field(default_factory=lambda: EvolutionConfig(population=50, iterations=20, top_k=10))
    final: FinalTraining = field(default_factory=FinalTraining)
    order: str = "train-first"
    aggressive: bool = False
    pro_width: float | None = None
    distill_weight: float = 0.5
    landing: LandingPolicy = field(default_factory=LandingPolicy)

    def check(self) -> None:
        if (self.target_ms > 0) == (self.target_ratio > 0) or min(self.target_ms, self.target_ratio) < 0:
            raise DominoError("give one target: target_ms (ms) or target_ratio (a share of the ungrafted latency) > 0")
        if self.order not in ORDERS or self.calibration_masks < 0:
            raise DominoError(f"order must be one of {', '.join(ORDERS)}, calibration_masks >= 0")
        if self.landing.mode == "correct":
            raise DominoError("a mask lands by the closed loop or one measurement: 'correct' refines a supernet")
        if self.latency_masks < 10 or self.proxy_masks < 1 or self.target_masks < 1:
            raise DominoError("latency_masks must be >= 10, proxy_masks and target_masks >= 1")
        if not self.aggressive and self.proxy_masks < self.meta.shots + self.meta.queries:
            raise DominoError(
                f"proxy_masks ({self.proxy_masks}) must hold a meta-task: shots + queries = "
                f"{self.meta.shots + self.meta.queries}"
            )
        self.proxy.check()
        self.final.check()
        self.meta.check()
        self.evolution.check()


#: Called with (step name, done, total, message).
Progress = Callable[[str, int, int, str], None]


def _quiet(step: str, done: int, total: int, message: str) -> None:
    pass


@dataclass
class DominoRun:
    """One Domino run over ``loaded`` (a :class:`~edgenas.models.LoadedModel` without grafting steps). With
    ``pretrained`` its weights are trained: the target pairs and the final training then start from them (grafted),
    as the chosen network will. A given ``latency_predictor`` (of this network's mask space, e.g. fitted with
    ``edgenas predictor fit`` on ``edgenas profile domino``) replaces step 1."""

    loaded: Any
    data: ImageData
    out: Path
    job: DominoJob
    device: Any
    teacher: Any = None
    pretrained: bool = False
    latency_predictor: Any = None
    progress: Progress = _quiet
    space: MaskSpace = field(init=False)

    def __post_init__(self) -> None:
        self.job.check()
        self.out = Path(self.out)
        self.space = mask_space(self.loaded.recipe)
        if self.latency_predictor is not None:  # a given one must be of this network: refused before any write
            predicted_latency(self.latency_predictor, self.space)

    # -- 1. latency --
    def latency(self) -> CachedPredictor:
        from edgenas.hardware import MeasurementStore
        from edgenas.predictors import Predictor, fit_on_store

        if self.latency_predictor is not None:
            return predicted_latency(self.latency_predictor, self.space)
        path = self.out / LATENCY_FILE
        if not path.is_file():
            n = self.job.latency_masks
            with MeasurementStore(self.out / STORE_FILE) as db:
                device = measure_masks(
                    self.space,
                    self.device.with_anchor(None),  # the profile times the mask space's own reference beside
                    db,
                    n,
                    seed=self.job.evolution.seed,
                    on_progress=lambda done, total, *_: self.progress("latency", done, total, "measuring masks"),
                )
            fit_on_store(self.space, self.out / STORE_FILE, device, seed=self.job.evolution.seed).save(path)
        return predicted_latency(Predictor.load(path), self.space)

    # -- calibrate --
    def calibrate(self, latency: CachedPredictor) -> SessionCalibration:
        """The session calibration (kept in ``calibration.json``: a resumed run reads T at the same level)."""
        kept = self.out / CALIBRATION_FILE
        if not kept.is_file():
            self.progress("calibrate", 0, 1, "timing the ungrafted, the all-grafted and spread masks")
            loads, job = self.job.landing.loads, self.job
            spread = 0 if job.aggressive else job.calibration_masks  # no search to calibrate: the level only
            session = calibrate_masks(self.space, latency, self.device, spread=spread, loads=loads)
            write_text_atomic(kept, json.dumps(session.as_dict()) + "\n")
            self.progress("calibrate", 1, 1, f"ungrafted {session.level_ms:.3f} ms, predictor x{session.factor:.3f}")
        return SessionCalibration.from_dict(json.loads(kept.read_text()))

    # -- 2.-3. accuracy --
    def pairs(self) -> tuple[dict, dict]:
        """(proxy pairs, target pairs): mask choices -> top-1 per epoch."""
        job, table = self.job, PairTable(self.out / PAIRS_FILE, self.space)
        seed = job.evolution.seed
        proxy_specs = self.space.sample(seed=seed + 1, n=job.proxy_masks)
        target_specs = self.space.sample(seed=seed + 2, n=job.target_masks)
        proxy = collect_pairs(
            table, proxy_specs, self.data, job.proxy, "proxy", on_pair=self._pair_progress("proxy pairs")
        )
        target = collect_pairs(
            table,
            target_specs,
            self.data,
            self.target_schedule(),
            "target-finetuned" if self.pretrained else "target",
            start=self.loaded.model if self.pretrained else None,
            on_pair=self._pair_progress("target pairs"),
        )
        return proxy, target

    def target_schedule(self) -> PairSchedule:
        """The final training's recipe at the network's resolution (0 images = the whole split)."""
        final = self.job.final
        return PairSchedule(
            epochs=final.epochs,
            images=final.images or len(self.data.train_labels),
            test_images=final.test_images or len(self.data.test_labels),
            resolution=self.loaded.resolution,
            batch_size=final.batch_size,
            lr=final.lr,
            seed=final.seed,
        )

    def _pair_progress(self, step: str) -> Callable[..., None]:
        def report(done: int, total: int, spec: ArchSpec, top1: list[float]) -> None:
            self.progress(step, done, total, f"{self.space.format(spec)}: {top1[-1]:.1f}%")

        return report

    def accuracy(self, proxy: dict, target: dict) -> PredictedAccuracy:
        shots = final_task(target)
        meta = self.job.meta
        if len(shots.y) < meta.shots:  # adapt on what there is: MAML's inner steps take any number of pairs
            meta = replace(meta, shots=len(shots.y))
        return PredictedAccuracy.meta_learned(self.space, proxy_tasks(proxy), shots, meta)

    # -- 4. search --
    def choose(self, latency: CachedPredictor, session: SessionCalibration) -> tuple[ArchSpec, dict[str, Any]]:
        """The mask: searched under ``latency`` (calibrated) <= T and landed beside the ungrafted network."""
        if self.job.aggressive:
            spec = self.space.graft_all()
            return spec, {"method": "domino-aggressive", "calibrated_ms": latency([spec])[0]}
        target_ms = self.target(session)
        proxy, target = self.pairs()
        accuracy = self.accuracy(proxy, target)
        result = search_masks(
            self.space,
            accuracy,
            latency,
            target_ms,
            self.job.evolution,
            record=self.out / EVALUATED_FILE,
            on_generation=lambda g, best: self.progress(
                "search", g, self.job.evolution.iterations, f"best predicted {best.fitness:.1f}%"
            ),
        )
        best = result.best
        spec, landed = self.land(best.spec, latency, session)
        return spec, {
            "method": "domino",
            "searched_calibrated_ms": best.cost,
            "searched_predicted_top1": best.fitness,
            **landed,
            "predicted_top1": accuracy([spec])[0],
            "predicted_top1_ungrafted": accuracy([self.space.keep_all()])[0],
            "candidates": len(result.history),
            "pairs": {"proxy": len(proxy), "target": len(target)},
        }

    # -- 4b. land --
    def target(self, session: SessionCalibration) -> float:
        """T in ms at the calibration's level."""
        return session.target_ms(self.job.target_ms, self.job.target_ratio)

    def land(
        self, spec: ArchSpec, latency: CachedPredictor, session: SessionCalibration
    ) -> tuple[ArchSpec, dict[str, Any]]:
        """Bring the searched mask onto T measured beside the ungrafted network (the closed loop, grafting or keeping
        as few blocks differently as it can; each value its ratio x the calibration's level); kept in
        ``landing.json``, so a resumed run trains the mask it chose before."""
        from edgenas.hardware.device import latency_fn
        from edgenas.search.closed_loop import Band
        from edgenas.search.landing import land_found

        kept = self.out / LANDING_FILE
        if not kept.is_file():
            self.progress("land", 0, 1, f"landing the mask on T ({self.job.landing.mode})")
            policy = self.job.landing
            band = Band(self.target(session), policy.tolerance, "le")
            device = self.device.with_anchor(session.anchor(self.space))
            loop = land_found(spec, latency.predictor, band, latency_fn(device, policy.loads), policy)
            write_text_atomic(kept, json.dumps(loop.as_dict() | {"searched": self.space.format(spec)}) + "\n")
            self.progress("land", 1, 1, loop.verdict)
        record = json.loads(kept.read_text())
        if record["searched"] != self.space.format(spec):
            raise DominoError(f"{kept} landed another mask than this run's search found: use a fresh output folder")
        chosen = self.space.parse(record["chosen"])
        return chosen, {
            "searched_mask": record["searched"],
            "landing": {k: record[k] for k in ("verdict", "within_tolerance", "value", "spent")},
            "calibrated_ms": latency([chosen])[0],
        }

    # -- 5. train --
    def train(self, spec: ArchSpec) -> tuple[Any, dict[str, Any]]:
        from edgenas.models import graft_loaded, save_model_file
        from edgenas.nn.graft import DominoPro
        from edgenas.train import train

        grafted = copy.deepcopy(self.loaded)
        pro = DominoPro(width=self.job.pro_width) if self.job.pro_width else None
        first = self.job.order == "reparameterize-first"
        graft_loaded(grafted, self.space.format(spec), pro=pro, reparameterize_first=first)
        run = self.out / "train"
        config = self.job.final.train_config(distill_weight=self.job.distill_weight)
        total = config.epochs
        result = train(
            grafted.model,
            self.data,
            config,
            run,
            recipe=grafted.recipe,
            resume=(run / "checkpoints" / "last.pt").is_file(),
            input_size=grafted.resolution,
            teacher=self.teacher,
            callbacks=[_EpochProgress(lambda done, msg: self.progress("train", done, total, msg))],
        )
        save_model_file(self.out / MODEL_FILE, grafted)
        return grafted, result.final

    # -- 6. deploy --
    def deploy(self, grafted: Any, session: SessionCalibration) -> dict[str, Any]:
        from edgenas.export import export_onnx
        from edgenas.nn import reparameterize

        collapsed = reparameterize(grafted.model)
        shape = self.device.options.input_shape
        exported = export_onnx(collapsed, self.out / ONNX_FILE, shape, tolerance=ONNX_TOLERANCE)
        agreement = _agreement(grafted.model, self.out / ONNX_FILE, shape)
        self.progress("deploy", 0, 1, "timing the collapsed network beside the ungrafted one")
        ungrafted, loads = reparameterize(self.loaded.model), self.job.landing.loads
        measured = deployed_ratio(self.device, ungrafted, collapsed, session.level_ms, loads)
        self.progress("deploy", 1, 1, f"speed-up {measured['speedup']:.2f}x")
        return {"onnx": str(exported.path), "onnx_rel_error_vs_grafted": agreement, **measured}

    def run(self) -> dict[str, Any]:
        from edgenas._env import environment
        from edgenas.train import evaluate

        rundir.check_resume(self.out, self.job, DominoError, "Domino run")
        self.out.mkdir(parents=True, exist_ok=True)
        rundir.write_provenance(self.out, {"config": asdict(self.job), "model": self.loaded.source}, environment("cpu"))
        fitted = self.latency()
        session = self.calibrate(fitted)
        latency = calibrated(fitted, self.space, session.factor)
        spec, chosen = self.choose(latency, session)
        test = self.job.final.test_images or None
        before = _top1(evaluate, self.loaded.model, self.data, self.loaded.resolution, test, self.job.final.seed)
        grafted, final = self.train(spec)
        deployed = self.deploy(grafted, session)
        target = self.target(session)
        summary = {
            "model": self.loaded.source,
            "mask_space": {k: self.space.describe()[k] for k in ("space", "space_hash", "options", "num_layers")},
            "target_ms": target,
            "target_ratio": target / session.level_ms,
            "ungrafted_ms": session.level_ms,
            "calibration": session.as_dict(),
            "mask": self.space.format(spec),
            "grafted_blocks": spec.choices.count(0),
            **chosen,
            "predicted_ms": fitted([spec])[0],
            "latency_predictor": _scores(fitted.predictor),
            "top1_before": before,
            "top1_after": final.get("test_top1"),
            **deployed,
            "met": deployed["ratio"] <= target / session.level_ms * (1 + self.job.landing.tolerance),
            "tolerance": self.job.landing.tolerance,
            "runtime": {"name": self.device.name, **asdict(self.device.options)},
            "job": asdict(self.job),
        }
        rundir.write_summary(self.out, summary)
        return summary


class _EpochProgress:
    """A trainer callback that reports finished epochs."""

    def __init__(self, report: Callable[[int, str], None]) -> None:
        self.report = report

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.report(info["start_epoch"], "training the grafted network")

    def on_step_end(self, info: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.report(record["epoch"], f"test top-1 {record['test_top1']:.1f}%")


def _top1(evaluate: Any, model: Any, data: ImageData, resolution: int, test_images: int | None, seed: int) -> float:
    from edgenas.train import balanced_subset

    subset = balanced_subset(data.test_labels, test_images, seed=seed) if test_images else None
    return float(evaluate(model, data, subset=subset, input_size=resolution, device="cpu")["top1"])


def _agreement(model: Any, onnx_path: Path, shape: tuple[int, ...]) -> float:
    """Largest relative difference between the ONNX file's outputs and the trained grafted network's (eval mode)."""
    import numpy as np
    import torch

    from edgenas.export import run_onnx

    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reference = model.cpu()(x).numpy()
    model.train(was_training)
    produced = run_onnx(onnx_path, x.numpy())
    return float(np.max(np.abs(produced - reference)) / max(float(np.max(np.abs(reference))), 1e-12))


def _scores(predictor: Any) -> dict[str, float]:
    test = predictor.meta.scores.get("test", {})
    return {k: float(v) for k, v in test.items() if isinstance(v, (int, float))}

"""The search stage: LightNAS with the device in the loop (calibrate the predictor near T, search, measure the
found arch and correct), then every profiled arch and the found one ranked by one-shot accuracy."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from edgenas._io import write_text_atomic
from edgenas.errors import SearchError
from edgenas.pipeline._device import LOADS, arch_measurer, run_anchor
from edgenas.pipeline._stage import Stage, StageContext, register_stage
from edgenas.pipeline.config import ConfigError, RunConfig
from edgenas.pipeline.stages_measure import run_images, run_space
from edgenas.predictors import Predictor
from edgenas.search.budget import feasible_range
from edgenas.search.engine import SearchConfig, Target, prepare_targets, search, total_steps
from edgenas.spaces import load_specs

CALIBRATED_FILE = "predictor_calibrated.pt"
CANDIDATES_FILE = "candidates.json"
SEARCH_DIR = "search"
#: Archs predicted near T that a calibration measures lie within this share of T.
CALIBRATION_BAND = 0.05
#: Alpha steps per correction round (the CLI's default).
CORRECTION_STEPS = 200


def target_ms(config: RunConfig, profiled: list[float]) -> float:
    """The latency target: ``budget.latency_ms``, or the ``budget.latency_quantile`` of the profiled latencies (a
    target every device reaches: CPUs differ by 2x and more, so a fixed number of ms may lie outside one's range)."""
    if config.budget.latency_ms > 0:
        return config.budget.latency_ms
    return round(float(np.quantile(profiled, config.budget.latency_quantile)), 3)


#: A target taken from a quantile of the profile is moved this share inside the predictor's feasible range when it
#: falls outside (a small profile or a device that moved since); a target the user set in ms is never moved.
RANGE_MARGIN = 0.02


def feasible_target(config: RunConfig, space: Any, predictor: Predictor, value: float) -> Target:
    """The latency target on ``predictor``: ``value`` when the predictor reaches it; else, for a target derived from
    the profile, the nearest value :data:`RANGE_MARGIN` inside the range; for ``budget.latency_ms``, an error naming
    the key."""
    reach = feasible_range(predictor, space)
    if reach.low <= value <= reach.high:
        return Target(predictor, value)
    if config.budget.latency_ms > 0:
        raise ConfigError(
            f"config key 'budget.latency_ms': {value:g} ms is outside what the predictor reaches on this space, "
            f"{reach.low:.4g}..{reach.high:.4g} ms (on this device, after calibration when search.calibrate > 0)"
        )
    return Target(predictor, round(min(max(value, reach.low * (1 + RANGE_MARGIN)), reach.high * (1 - RANGE_MARGIN)), 4))


def search_config(config: RunConfig) -> SearchConfig:
    """The search's config: the run's keys over the space's measured loop (``SearchConfig.for_space``)."""
    s = config.search
    return SearchConfig.for_space(
        run_space(config),
        method=s.strategy,
        epochs=s.epochs,
        warmup_epochs=s.warmup_epochs,
        batch_size=s.batch_size,
        alpha_batch_size=s.alpha_batch_size,
        alpha_lr=s.alpha_lr,
        train_subset=s.subset or config.data.subset,  # a run on a subset searches on it too, unless told otherwise
        seed=config.seed,
        device=s.device,
    )


@register_stage
class SearchStage(Stage):
    name = "search"
    needs = ("profile", "predictor")
    sections = ("space", "data", "budget", "search", "seed", "device")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        config, space = ctx.config, run_space(ctx.config)
        images = run_images(config)
        profiled = _profiled_latencies(ctx)
        target = target_ms(config, profiled)
        targets = self._targets(ctx, space, target)
        run = ctx.dir / SEARCH_DIR
        sconfig = search_config(config)
        level = ctx.upstream["profile"].outputs.get("level")
        measure = arch_measurer(config, space, ctx.dir / "measure", run_anchor(level, space))
        if config.search.calibrate:
            targets[0] = self._calibrated(ctx, space, targets[0], measure, sconfig)
        moved_from = target if targets[0].value != target else None
        target = targets[0].value
        if moved_from is not None:
            ctx.events.warn(
                f"T = {moved_from:g} ms (budget.latency_quantile of the profile) is outside what the predictor "
                f"reaches; searching for {target:g} ms instead (raise profile.n for a predictor that covers it)"
            )
        if not (run / "summary.json").is_file():
            resume = (run / "checkpoints" / "last.pt").is_file()
            if config.search.nproc > 1:
                self._torchrun(ctx, space, targets, sconfig, run, resume)
            else:
                on_step = ctx.progress("search")
                steps = total_steps(sconfig, images)
                search(
                    space, targets, images, sconfig, run, resume=resume, on_step=lambda e: on_step(e["step"] + 1, steps)
                )
        summary = json.loads((run / "summary.json").read_text())
        measured = self._measured(ctx, space, targets, sconfig, measure, images)
        arch = load_specs(run / "arch.json")[0]
        if str(arch) in measure.latest and "levels" not in measured:  # what the verdict read, at which level
            measured["levels"] = measure.latest[str(arch)].levels()
        self._candidates(ctx, space, sconfig, images, arch, measured["median_ms"])
        return {
            "files": {
                "arch": f"{SEARCH_DIR}/arch.json",
                "trajectory": f"{SEARCH_DIR}/trajectory.jsonl",
                "candidates": CANDIDATES_FILE,
            },
            "arch": str(arch),
            "target_ms": target,
            "target_source": "budget.latency_ms"
            if config.budget.latency_ms > 0
            else f"quantile {config.budget.latency_quantile:g} of the profile"
            + (f", moved from {moved_from:g} ms into the predictor's range" if moved_from is not None else ""),
            "predicted_ms": float(targets[0].predictor.predict(arch)),
            "measured": measured,
            "processes": config.search.nproc,
            "level": level,
            "feasible_ms": [summary["targets"][0]["feasible_low"], summary["targets"][0]["feasible_high"]],
        }

    @staticmethod
    def _torchrun(
        ctx: StageContext, space: Any, targets: list[Target], sconfig: SearchConfig, run: Any, resume: bool
    ) -> None:
        """The search on ``search.nproc`` processes: a job file (:class:`edgenas.jobs.SearchJob`: this config, the
        (calibrated) predictors saved beside it) that ``torchrun -m edgenas job`` runs on every rank; the device work
        before and after it stays in this process."""
        from edgenas.jobs import SearchJob, save_job
        from edgenas.pipeline._launch import launch

        files = [t.predictor.save(ctx.dir / f"search_target{i}.pt") for i, t in enumerate(targets)]
        job = SearchJob(
            space.name,
            dict(ctx.config.space.options),
            asdict(sconfig),
            [{"predictor": str(f), "value": t.value} for f, t in zip(files, targets, strict=True)],
            ctx.config.data.path or None,
            str(run),
            resume,
        )
        ctx.events.progress("search", 0, None, f"torchrun on {ctx.config.search.nproc} processes")
        launch(ctx.config.search.nproc, ["job", str(save_job(job, ctx.dir / "search_job.json"))])

    @staticmethod
    def _targets(ctx: StageContext, space: Any, target: float) -> list[Target]:
        predicted = ctx.upstream["predictor"]
        targets = [feasible_target(ctx.config, space, Predictor.load(predicted.path("predictor")), target)]
        if ctx.config.budget.energy_mj > 0:
            targets.append(Target(Predictor.load(predicted.path("energy_predictor")), ctx.config.budget.energy_mj))
        for t in targets:  # one at a time, so that the error names the key of the target that cannot be met
            try:
                prepare_targets(space, [t], "eq")
            except SearchError as exc:
                raise ConfigError(f"config key '{_budget_key(ctx.config, t)}': {exc}") from exc
        return targets

    @staticmethod
    def _calibrated(ctx: StageContext, space: Any, target: Target, measure: Any, sconfig: SearchConfig) -> Target:
        """The target with its predictor scaled to archs near T measured now (kept in the stage: a resumed search
        continues with the same one)."""
        from edgenas.search.calibrate import calibrate, scale_predictor

        saved = ctx.dir / CALIBRATED_FILE
        if not saved.is_file():
            ctx.events.progress("search", 0, None, f"calibrating: measuring {ctx.config.search.calibrate} archs near T")
            calibration = calibrate(
                target.predictor,
                space,
                target.value,
                measure,
                ctx.config.search.calibrate,
                band=CALIBRATION_BAND,
                seed=sconfig.seed,
            )
            write_text_atomic(ctx.dir / "calibration.json", json.dumps(calibration.__dict__, indent=1) + "\n")
            scale_predictor(target.predictor, calibration.factor).save(saved)
        return feasible_target(ctx.config, space, Predictor.load(saved), target.value)

    @staticmethod
    def _measured(ctx, space, targets, sconfig, measure, images) -> dict[str, Any]:
        """The found arch landed on T with the device (:func:`edgenas.search.landing.land`, by ``search.landing``);
        the closed loop is seeded with the profile's measurements, which it leaves as they are."""
        from edgenas.search.landing import LandingPolicy, land

        done = ctx.dir / "measured.json"
        if done.is_file():
            return json.loads(done.read_text())
        s, prior = ctx.config.search, []
        if s.landing == "close-loop":
            policy = LandingPolicy("close-loop", s.close_loop, ctx.config.budget.tolerance, LOADS)
            prior = _profiled_pairs(ctx, space)
        elif s.correct_rounds:
            policy = LandingPolicy("correct", s.correct_rounds, ctx.config.budget.tolerance, LOADS, CORRECTION_STEPS)
        else:
            policy = LandingPolicy("measure", 1, ctx.config.budget.tolerance, LOADS)
        ctx.events.progress("search", 0, None, f"landing the found arch on T with the device ({policy.mode})")
        measured = land(
            ctx.dir / SEARCH_DIR,
            space,
            targets,
            sconfig,
            measure,
            policy,
            runtime=_runtime_name(ctx.config),
            data=images,
            prior=prior,
        )
        result = {k: measured[k] for k in ("median_ms", "error", "within_tolerance", "rounds", "mode")}
        write_text_atomic(done, json.dumps(result, indent=1) + "\n")
        return result

    @staticmethod
    def _candidates(ctx, space, sconfig, images, arch, arch_ms) -> list[dict[str, Any]]:
        """One-shot accuracy of every profiled arch and of the found one, with their measured latencies."""
        from edgenas.hardware import MeasurementStore
        from edgenas.search.oneshot import load_supernet, oneshot_accuracy

        path = ctx.dir / CANDIDATES_FILE
        if path.is_file():
            return json.loads(path.read_text())
        profiled = ctx.upstream["profile"]
        with MeasurementStore(profiled.path("store"), create=False) as db:
            values = db.values(profiled.outputs["device"], metric="latency_ms", space_hash=space.config_hash)
        kept = ctx.config.search.oneshot_candidates
        if kept:  # the archs of about the found one's latency: the same-budget comparison needs no others
            nearest = sorted(values.items(), key=lambda kv: abs(math.log(kv[1] / arch_ms)))[:kept]
            values = dict(nearest)
        specs = [space.parse(a) for (_, a) in values]
        supernet = load_supernet(ctx.dir / SEARCH_DIR, space, sconfig)
        progress = ctx.progress("search")
        ranked = oneshot_accuracy(
            supernet,
            [*specs, arch],
            images,
            sconfig,
            on_progress=lambda d, t: progress(d, t, "one-shot accuracy of the candidates"),
        )
        rows = [
            {"arch": str(s), "measured_ms": v, "oneshot_top1": a, "source": "profile"}
            for s, v, a in zip(specs, values.values(), ranked, strict=False)
        ]
        rows.append({"arch": str(arch), "measured_ms": arch_ms, "oneshot_top1": ranked[-1], "source": "search"})
        write_text_atomic(path, json.dumps(rows, indent=1) + "\n")
        return rows


def _budget_key(config: RunConfig, target: Target) -> str:
    """The config key that set ``target``."""
    if target.name != "latency_ms":
        return "budget.energy_mj"
    return "budget.latency_ms" if config.budget.latency_ms > 0 else "budget.latency_quantile"


def _profiled_latencies(ctx: StageContext) -> list[float]:
    from edgenas.hardware import MeasurementStore

    profiled = ctx.upstream["profile"]
    space = run_space(ctx.config)
    with MeasurementStore(profiled.path("store"), create=False) as db:
        return list(db.values(profiled.outputs["device"], metric="latency_ms", space_hash=space.config_hash).values())


def _profiled_pairs(ctx: StageContext, space: Any) -> list[tuple[Any, float]]:
    """(arch, measured ms) of every profiled arch: the closed loop's prior."""
    from edgenas.hardware import MeasurementStore

    profiled = ctx.upstream["profile"]
    with MeasurementStore(profiled.path("store"), create=False) as db:
        values = db.values(profiled.outputs["device"], metric="latency_ms", space_hash=space.config_hash)
    return [(space.parse(arch), float(v)) for (_, arch), v in values.items()]


def _runtime_name(config: RunConfig) -> str:
    return "remote" if config.device.remote else config.device.runtime

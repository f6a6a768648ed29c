"""The channel stage: LightNets++' channel search on the found network (thesis Algorithm 2), optional.

With ``channels.enabled`` it measures ``channels.profile_n`` channel configurations of the found net on the run's
device, fits their latency predictor, and searches the configuration with the best BTE whose predicted latency meets
the search's T; the trained network is then that configuration. Disabled, it hands the search's arch on unchanged.
Either way it writes ``arch.json``: the network the training stage trains.
"""

from __future__ import annotations

import shutil
from typing import Any

from edgenas.compress.channels import (
    ChannelSearchConfig,
    TargetBelowChannelsError,
    channel_search,
    measure_channel_profile,
)
from edgenas.evolution import EvolutionConfig
from edgenas.hardware import MeasurementStore
from edgenas.pipeline import stages_search  # noqa: F401  (its stages run before these: register them first)
from edgenas.pipeline._device import LOADS, load_warning, run_anchor, run_device
from edgenas.pipeline._stage import Stage, StageContext, register_stage
from edgenas.pipeline.stages_measure import run_images, run_space
from edgenas.predictors import fit_on_store
from edgenas.search.landing import LandingPolicy
from edgenas.spaces import load_specs
from edgenas.spaces.channels import ChannelSpace, channel_space

ARCH_FILE = "arch.json"
SEARCH_DIR = "search"
STORE_FILE = "store.sqlite"
#: What the stage's outputs keep of the landing's record (the whole record is in the search's summary.json).
LANDING_KEYS = ("verdict", "within_tolerance", "value", "spent")


@register_stage
class ChannelsStage(Stage):
    """Refine the found net's per-layer channels under T (or pass it on when ``channels.enabled`` is false)."""

    name = "channels"
    needs = ("search",)
    sections = ("channels", "device", "profile", "data", "seed")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        found = ctx.upstream["search"]
        if not ctx.config.channels.enabled:
            shutil.copyfile(found.path("arch"), ctx.dir / ARCH_FILE)
            return {"files": {"arch": ARCH_FILE}, "applied": False, "arch": found.outputs["arch"]}
        warning = None if ctx.config.device.remote else load_warning(ctx.config.device.max_load)
        if warning:
            ctx.events.warn(warning)
        base = load_specs(found.path("arch"))[0]
        space = channel_space(base)
        # the run's reference beside every channel measurement, read at the run's nominal level: T's unit (issue 30)
        anchor = run_anchor(found.outputs.get("level"), run_space(ctx.config))
        predictor = self._predictor(ctx, space, anchor)
        try:
            summary = channel_search(
                base,
                predictor,
                run_images(ctx.config),
                ctx.dir / SEARCH_DIR,
                self._search_config(ctx, found.outputs["target_ms"]),
                device=run_device(ctx.config, space.resolution, ctx.dir / "measure", anchor=anchor),
                landing=self._landing(ctx),
                on_generation=lambda done, best: ctx.events.progress(
                    "channels",
                    done,
                    ctx.config.channels.iterations,
                    f"best {ctx.config.channels.proxy} {best.fitness:.4g}",
                ),
            )
        except TargetBelowChannelsError as exc:  # the check stage reports the miss and what to change
            ctx.events.warn(f"channel search skipped: {exc}")
            shutil.copyfile(found.path("arch"), ctx.dir / ARCH_FILE)
            return {"files": {"arch": ARCH_FILE}, "applied": False, "arch": found.outputs["arch"], "reason": str(exc)}
        shutil.copyfile(ctx.dir / SEARCH_DIR / "arch.json", ctx.dir / ARCH_FILE)
        return {
            "files": {
                "arch": ARCH_FILE,
                "summary": f"{SEARCH_DIR}/summary.json",
                "plot": f"{SEARCH_DIR}/channels.png",
                "predictor": "predictor.pt",
            },
            "applied": True,
            "arch": summary["found"]["channels"],
            "base_arch": str(base),
            "target_ms": found.outputs["target_ms"],
            "found": summary["found"],
            "unmodified": summary["unmodified"],
            "landing": summary["landing"]
            and {k: summary["landing"][k] for k in ("verdict", "within_tolerance", "spent")},
            "candidates": summary["candidates"],
            "predictor_scores": predictor.meta.scores["test"],
        }

    @staticmethod
    def _landing(ctx: StageContext) -> LandingPolicy:
        c = ctx.config.channels
        if not c.close_loop:
            return LandingPolicy("measure", 1, c.tolerance, LOADS)
        return LandingPolicy("close-loop", c.close_loop, c.tolerance, LOADS)

    @staticmethod
    def _search_config(ctx: StageContext, target: float) -> ChannelSearchConfig:
        c = ctx.config.channels
        return ChannelSearchConfig(
            target_ms=target,
            constraint=c.constraint,
            tolerance=c.tolerance,
            proxy=c.proxy,
            epochs=c.epochs,
            images=c.images,
            batch_size=c.batch_size,
            evolution=EvolutionConfig(
                population=c.population, iterations=c.iterations, top_k=c.top_k, seed=ctx.config.seed
            ),
        )

    @staticmethod
    def _predictor(ctx: StageContext, space: ChannelSpace, anchor: Any) -> Any:
        """Measure the channel configurations on the run's device (here or through ``device.remote``; measured ones
        are kept, so a killed stage resumes) and fit their predictor."""
        config, progress = ctx.config, ctx.progress("channels")
        with MeasurementStore(ctx.dir / STORE_FILE) as db:
            device = measure_channel_profile(
                space,
                run_device(config, space.resolution, ctx.dir, anchor=anchor),
                db,
                config.channels.profile_n,
                sampling=config.channels.sampling,
                seed=config.seed,
                device_name=config.device.name or None,
                on_progress=lambda done, total, *_: progress(done, total, "profiling"),
            )
        level = anchor.nominal_ms if anchor is not None else None
        predictor = fit_on_store(space, ctx.dir / STORE_FILE, device, seed=config.seed, level_ms=level)
        predictor.save(ctx.dir / "predictor.pt")
        return predictor

"""The measuring stages: profile archs on the device, fit the latency predictor on them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgenas._io import write_text_atomic
from edgenas.errors import EdgeNASError
from edgenas.hardware import MeasurementKey, MeasurementStore
from edgenas.pipeline._device import device_level, load_warning, profile_on_device, run_device
from edgenas.pipeline._stage import Stage, StageContext, register_stage
from edgenas.pipeline.config import ConfigError, RunConfig
from edgenas.predictors import FitConfig, fit_predictor, scores, table_from_store
from edgenas.predictors.select import AUTO_KINDS, choose_kind
from edgenas.spaces import get_space

STORE_FILE = "store.sqlite"


def run_space(config: RunConfig) -> Any:
    """The search space of the run."""
    return get_space(config.space.name, **config.space.options)


def run_images(config: RunConfig) -> Any:
    """The run's dataset at the space's resolution (``data.path`` '' = the ``EDGENAS_DATA`` folder)."""
    from edgenas.train import load_dataset

    return load_dataset(config.data.path or None, image_size=run_space(config).resolution)


@register_stage
class ProfileStage(Stage):
    """Measure ``profile.n`` archs of the space on the device into the stage's store (archs already stored are
    skipped, so a killed profile continues where it stopped)."""

    name = "profile"
    sections = ("space", "device", "profile")

    def extra_inputs(self, config: RunConfig) -> dict[str, Any]:
        return {"energy": config.budget.energy_mj > 0}  # an energy budget also measures energy

    def run(self, ctx: StageContext) -> dict[str, Any]:
        config, space = ctx.config, run_space(ctx.config)
        warning = None if config.device.remote else load_warning(config.device.max_load)
        if warning:
            ctx.events.warn(warning)
        store_path = ctx.dir / STORE_FILE
        with MeasurementStore(store_path) as db:
            device, key = self._profile(ctx, space, db)
            values = db.values(device, metric="latency_ms", space_hash=space.config_hash)
            level = device_level(db, device, key, space)
        if level["unanchored"]:
            ctx.events.warn(
                f"{level['unanchored']} rows of {device} in the store were measured without a reference beside "
                "(an older store): their level is unknown, their milliseconds are used as measured"
            )
        latencies = np.asarray(list(values.values()), float)
        return {
            "files": {"store": STORE_FILE},
            "device": device,
            "runtime": key.runtime,
            "measured": len(latencies),
            "latency_ms": {
                "min": float(latencies.min()),
                "median": float(np.median(latencies)),
                "max": float(latencies.max()),
            },
            "level": level,
            "load_warning": warning,
        }

    @staticmethod
    def _profile(ctx: StageContext, space: Any, db: MeasurementStore) -> tuple[str, MeasurementKey]:
        """``profile.n`` archs of ``space`` (uniform, ordered, or covering the latency range) into ``db`` on the run's
        device (here or through ``device.remote``); returns the device's name in the store and the rows' key."""
        from edgenas.search.coverage import profile_covering

        config = ctx.config
        n, seed, energy = config.profile.n, config.profile.seed, config.budget.energy_mj > 0
        if config.profile.sampling != "cover":
            specs = space.sample(seed=seed, n=n, ordered=config.profile.sampling == "ordered")
            return profile_on_device(config, specs, db, ctx.dir, ctx.progress("profile"), energy=energy)
        device = run_device(config, space.resolution, ctx.dir)
        options = {"device_name": config.device.name or None, "on_progress": ctx.progress("profile"), "energy": energy}
        report = profile_covering(space, device, db, n, seed=seed, **options)
        return report.device, device.key()


PREDICTOR_FILE = "predictor.pt"
SCATTER_FILE = "scatter.json"
ENERGY_FILE = "energy_predictor.pt"


#: ``predictor.kind`` that chooses the kind by a validation split (:mod:`edgenas.predictors.select`).
AUTO = "auto"


@register_stage
class PredictorStage(Stage):
    """Fit the latency predictor on the profile (``predictor.train_size`` of it) and score it on the rest."""

    name = "predictor"
    needs = ("profile",)
    sections = ("space", "predictor", "seed")

    def extra_inputs(self, config: RunConfig) -> dict[str, Any]:
        return {"energy": config.budget.energy_mj > 0}  # an energy budget also fits an energy predictor

    @staticmethod
    def _energy(ctx: StageContext, space: Any) -> str:
        """Fit the energy predictor on the profile's energy rows; returns its file name."""
        profiled = ctx.upstream["profile"]
        try:
            table = table_from_store(profiled.path("store"), profiled.outputs["device"], space, metric="energy_mJ")
        except EdgeNASError as exc:
            raise ConfigError(
                f"config key 'budget.energy_mj': no energy was measured on this device ({exc}); an energy budget "
                "needs a readable counter (NVML on a GPU, RAPL on an Intel CPU)"
            ) from exc
        kind = ctx.config.predictor.kind
        if kind == AUTO:
            kind, _ = choose_kind(table, config=FitConfig(epochs=ctx.config.predictor.epochs, seed=ctx.config.seed))
        predictor = fit_predictor(kind, table, FitConfig(epochs=ctx.config.predictor.epochs, seed=ctx.config.seed))
        predictor.save(ctx.dir / ENERGY_FILE)
        return ENERGY_FILE

    def run(self, ctx: StageContext) -> dict[str, Any]:
        config, space = ctx.config, run_space(ctx.config)
        profiled = ctx.upstream["profile"]
        table = table_from_store(profiled.path("store"), profiled.outputs["device"], space, metric="latency_ms")
        fitted = len(table) if config.predictor.train_size >= 1 else config.predictor.train_size
        train, test = table.split(fitted, seed=config.seed) if fitted != len(table) else (table, table)
        fit = FitConfig(epochs=config.predictor.epochs, seed=config.seed)
        kind, validation = config.predictor.kind, None
        if kind == AUTO:
            ctx.events.progress("predictor", 0, None, f"choosing among {', '.join(AUTO_KINDS)} on {len(train)} archs")
            kind, validation = choose_kind(train, AUTO_KINDS, fit, seed=config.seed)
        ctx.events.progress("predictor", 0, None, f"fitting a {kind} on {len(train)} archs")
        predictor = fit_predictor(kind, train, fit)
        predicted = np.asarray(predictor.predict(test.specs), float).reshape(-1)
        result = scores(predicted, test.values)
        predictor.meta.scores["test"] = result
        predictor.save(ctx.dir / PREDICTOR_FILE)
        scatter = {"predicted": predicted.tolist(), "measured": np.asarray(test.values, float).tolist()}
        write_text_atomic(ctx.dir / SCATTER_FILE, json.dumps(scatter) + "\n")
        files = {"predictor": PREDICTOR_FILE, "scatter": SCATTER_FILE}
        if config.budget.energy_mj > 0:
            files["energy_predictor"] = self._energy(ctx, space)
        return {
            "files": files,
            "kind": kind,
            "chosen_by": validation,
            "train": len(train),
            "test": len(test),
            "scores": result,
            "scored_on": "held-out archs" if test is not train else "the fitted archs (train_size = 1)",
        }

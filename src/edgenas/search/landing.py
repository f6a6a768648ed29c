"""Bringing a search's result onto its target on the device: the measurers, the calibration before a search, the
measurement after it, the refit loop and the closed loop on measurements, as ``edgenas search`` runs them.

These were the CLI's own (``cli/search.py``); they live here so that every caller can land the same way (issue 28:
one way to land; the pipeline's search stage still calibrates and corrects on its own, see
``pipeline/stages_search.py``). Nothing here prints: a caller that shows progress passes a ``status`` context.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from edgenas._io import write_text_atomic
from edgenas.errors import EdgeNASError, SearchError
from edgenas.hardware.measure import MeasureFn
from edgenas.search.config import SearchConfig, Target
from edgenas.search.engine import prepare_targets, update_summary
from edgenas.spaces import ArchSpec, SearchSpace

__all__ = [
    "calibrated_target",
    "close_loop_on_device",
    "energy_measurer",
    "latency_measurer",
    "measure_result",
    "refit_loop",
    "store_hook",
]


def latency_measurer(runtime: str, space: SearchSpace, loads: int) -> MeasureFn:
    """Latency (ms) of an arch: median over ``loads`` loads, batch 1, 1 thread (the protocol of the predictor data)."""
    from edgenas.hardware import RuntimeOptions, get_runtime, median_latency_ms

    session = get_runtime(runtime, RuntimeOptions(batch=1, resolution=space.resolution, threads=1))
    return lambda arch: median_latency_ms(arch, session, loads)


def energy_measurer(runtime: str, space: SearchSpace) -> MeasureFn:
    """Energy (mJ per inference) of an arch, where the runtime's device has a counter.

    Raises:
        SearchError: no energy counter on that device.
    """
    from edgenas.hardware import RuntimeOptions, energy_meter, get_runtime, measure_arch

    session = get_runtime(runtime, RuntimeOptions(batch=1, resolution=space.resolution, threads=1))
    meter, note = energy_meter(session.device_type)
    if meter is None:
        raise SearchError(f"--close-loop on an energy target needs an energy counter on {runtime}: {note}")
    return lambda arch: measure_arch(arch, session, energy=True).energy_mj


def store_hook(
    store: Path | None, store_device: str | None, metric: str, runtime: str, space: SearchSpace
) -> tuple[Any, list[tuple[ArchSpec, float]]]:
    """The closed loop's store hook (add every measurement under the device) and its prior (the store's rows of
    that device); (None, []) without a store."""
    if store is None:
        return None, []
    from edgenas.hardware import MeasurementStore, default_device_name, fingerprint
    from edgenas.hardware.store import MeasurementKey
    from edgenas.predictors import table_from_store

    key = MeasurementKey(runtime, metric, 1, space.resolution, 1)
    device = store_device or default_device_name(fingerprint("cuda" if "cuda" in runtime else "cpu"))
    try:
        table = table_from_store(store, device, space, metric=metric, runtime=runtime, batch=1, threads=1)
        prior = list(zip(table.specs, table.values.tolist(), strict=True))
    except EdgeNASError:  # no rows of this device yet: the loop starts from its own measurements
        prior = []

    def record(arch: ArchSpec, value: float) -> None:
        with MeasurementStore(store) as db:
            db.add(db.device_id(device, source="edgenas search --close-loop"), arch, key, value)

    return record, prior


def calibrated_target(
    space: SearchSpace,
    target: Target,
    measure: MeasureFn,
    n: int,
    run: Path,
    resume: bool,
    config: SearchConfig,
    is_main: bool,
) -> Target:
    """The latency target with its predictor scaled to today's device (``edgenas.search.calibrate``).

    The scaled predictor is kept in the run directory so that a resumed search (with or without calibration)
    continues with the same one; under torchrun rank 0 measures and the factor is summed over ranks (the others
    contribute 0), so every rank scales alike.

    Raises:
        SearchError: a new search into a directory that holds one, or a target out of reach before or after scaling.
    """
    import torch

    from edgenas.predictors import Predictor
    from edgenas.search.calibrate import calibrate, scale_predictor
    from edgenas.train.distributed import all_reduce_sum

    saved = run / "predictor_calibrated.pt"
    if resume and saved.is_file():
        return Target(Predictor.load(saved), target.value)
    if not resume and (run / "trajectory.jsonl").exists():
        raise SearchError(f"{run} already holds a search; use another directory or resume it")
    prepare_targets(space, [target], config.constraint)  # refuse an infeasible target before measuring anything
    calibration = calibrate(target.predictor, space, target.value, measure, n, seed=config.seed) if is_main else None
    factor = float(all_reduce_sum(torch.tensor([calibration.factor if is_main else 0.0], dtype=torch.float64))[0])
    scaled = Target(scale_predictor(target.predictor, factor), target.value)
    prepare_targets(space, [scaled], config.constraint)
    if is_main:
        run.mkdir(parents=True, exist_ok=True)
        record = {"factor": factor, "points": calibration.points}
        write_text_atomic(run / "calibration.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        scaled.predictor.save(saved)
    return scaled


def measure_result(arch: ArchSpec, runtime: str, targets: list[Target], tolerance: float, run: Path) -> dict[str, Any]:
    """Measure the derived arch (batch 1, 1 thread, the protocol of the predictor's data), compare it with the
    latency target and record it as ``measured`` in ``run/summary.json``."""
    from edgenas.hardware import RuntimeOptions, get_runtime
    from edgenas.hardware.measure import measure_arch
    from edgenas.spaces import space_of

    latency = next((t for t in targets if t.name == "latency_ms"), None)
    options = RuntimeOptions(batch=1, resolution=space_of(arch).resolution, threads=1)
    stats = measure_arch(arch, get_runtime(runtime, options), energy=False).latency
    result: dict[str, Any] = {"runtime": runtime, "median_ms": stats.median_ms, "iqr_ms": stats.iqr_ms}
    if latency is not None:
        error = stats.median_ms / latency.value - 1.0
        result.update(error=error, within_tolerance=abs(error) <= tolerance, tolerance=tolerance)
    update_summary(run, measured=result)
    return result


def refit_loop(
    space: SearchSpace,
    targets: list[Target],
    config: SearchConfig,
    run: Path,
    runtime: str,
    tolerance: float,
    summary: dict[str, Any],
    images: Any,
    *,
    store: Path,
    device: str,
    rounds: int,
    steps: int,
) -> dict[str, Any]:
    """Add the measurement to the store, refit the latency predictor on the store, refine the search, measure again;
    up to ``rounds`` times or until the measured latency is within the tolerance."""
    from edgenas.hardware import MeasurementStore
    from edgenas.hardware.store import MeasurementKey
    from edgenas.predictors import FitConfig, fit_predictor, table_from_store
    from edgenas.search.refine import refine
    from edgenas.spaces import load_specs

    history = []
    for round_ in range(1, rounds + 1):
        arch = load_specs(run / "arch.json")[0]
        measured = summary["measured"]
        with MeasurementStore(store) as db:
            db.add(
                db.device_id(device, source="edgenas search --refit"),
                arch,
                MeasurementKey(runtime, "latency_ms", 1, space.resolution, 1),
                measured["median_ms"],
                iqr=measured["iqr_ms"],
            )
        table = table_from_store(store, device, space, runtime=runtime, batch=1, resolution=space.resolution, threads=1)
        latency = targets[0]
        fitted = fit_predictor(latency.predictor.meta.kind, table, FitConfig(seed=config.seed))
        fitted.save(run / f"predictor_refit{round_}.pt")
        targets = [Target(fitted, latency.value), *targets[1:]]
        result = refine(run, space, targets, config, steps, data=images)
        summary = result.summary
        summary["measured"] = measure_result(result.arch, runtime, targets, tolerance, run)
        history.append(
            {
                "round": round_,
                "rows": len(table),
                "arch": str(result.arch),
                "predicted": summary["targets"][0]["predicted"],
                "measured_ms": summary["measured"]["median_ms"],
                "error": summary["measured"].get("error"),
            }
        )
        if summary["measured"].get("within_tolerance"):
            break
    return update_summary(run, **{**summary, "refits": history})


def close_loop_on_device(
    run: Path,
    target: Target,
    measure: MeasureFn,
    *,
    runtime: str,
    tolerance: float,
    budget: int,
    loads: int,
    record: Any = None,
    prior: list[tuple[ArchSpec, float]] | None = None,
    status: AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """Close the loop on measurements (``edgenas.search.closed_loop``) on ``target``; every measurement goes to
    ``record`` (a store, whose rows near T are the ``prior``); ``arch.json`` becomes the chosen arch and
    ``summary.json`` records the loop (and, for latency, the verdict as ``measured``)."""
    from edgenas.search.closed_loop import close_loop, searched_alpha
    from edgenas.spaces import load_specs, save_specs

    searched = load_specs(run / "arch.json")[0]
    with status or nullcontext():
        loop = close_loop(
            searched,
            searched_alpha(run),
            target.predictor,
            target.value,
            measure,
            tolerance=tolerance,
            budget=budget,
            prior=prior or [],
            on_measure=record,
        )
    save_specs(run / "arch.json", [loop.chosen])
    summary = update_summary(run, searched_arch=str(searched), closed_loop=loop.as_dict())
    if target.name != "latency_ms":
        return summary
    measured = {
        "runtime": runtime,
        "median_ms": loop.value,
        "loads": loads,
        "error": loop.value / target.value - 1,
        "within_tolerance": loop.within_tolerance,
        "tolerance": tolerance,
    }
    return update_summary(run, measured=measured)

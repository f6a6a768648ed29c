"""On-device calibration of a search's latency predictor (beyond the thesis).

A predictor fitted on earlier measurements misses the device as it is now: this shared VM ran 3% slower than when
the predictor's data was measured, hours earlier, and its speed moved by 3-10% within half an hour
(``benchmarks/results/lightnas.md``); and an additive table mis-prices the unusual archs a search converges to.
The thesis' Eq 4.11 lands the *predicted* latency on T; to land the *measured* one, the search needs measurements
in the loop:

* :func:`calibrate` (before the search) measures ``n`` archs whose predicted latency is near T — random archs walked
  layer by layer on the predictor until they are within a band around T — and scales the predictor by the median
  measured / predicted ratio: the device's level today, near the target.
* :func:`correct` (after the search) measures the derived arch, rescales the predictor so that it agrees with that
  measurement, continues the architecture phase briefly (:func:`edgenas.search.lightnas.refine`) so that the
  multiplier lands the rescaled prediction on T, and measures again — until the measurement is within the
  tolerance or the rounds run out. A local, multiplicative correction: the refined arch is a neighbour of the
  measured one, so its ratio is nearly the same.

Both only rescale (one number): the predictor's ranking of archs, learned from thousands of measurements, is kept.
Energy targets are left as they are (no runtime here measures energy per arch).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.errors import SearchError
from edgenas.hardware.measure import MeasureFn
from edgenas.predictors.base import Predictor
from edgenas.search.coverage import archs_near
from edgenas.spaces import SearchSpace


def scale_predictor(predictor: Predictor, factor: float) -> Predictor:
    """A copy of ``predictor`` whose every prediction is multiplied by ``factor`` (> 0); saveable like any other.

    The factor goes into the output de-standardisation (``meta.mean``/``meta.std``), so the network is untouched.
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise SearchError(f"a calibration factor must be a positive number, got {factor}")
    scaled = copy.deepcopy(predictor)
    meta = scaled.meta
    if meta.transform == "log":
        meta.mean += math.log(factor)
    else:
        meta.mean *= factor
        meta.std *= factor
    meta.value_range = (meta.value_range[0] * factor, meta.value_range[1] * factor)
    meta.scores = {**meta.scores, "calibration_factor": meta.scores.get("calibration_factor", 1.0) * factor}
    return scaled


@dataclass
class Calibration:
    """Measured archs near a target and the factor that scales the predictor to them.

    Attributes:
        factor: median of measured / predicted (unit-free).
        points: one record per arch: ``arch``, ``predicted`` and ``measured`` (ms).
    """

    factor: float
    points: list[dict[str, Any]] = field(default_factory=list)


def calibrate(
    predictor: Predictor,
    space: SearchSpace,
    value: float,
    measure: MeasureFn,
    n: int = 8,
    *,
    band: float = 0.03,
    seed: int = 0,
) -> Calibration:
    """Measure ``n`` archs predicted near ``value`` (see :func:`archs_near`) and return the median measured /
    predicted ratio — the factor :func:`scale_predictor` applies before the search."""
    if n < 1:
        raise SearchError(f"calibrate with at least one arch, got {n}")
    specs = archs_near(predictor, space, value, n, band=band, seed=seed)
    predicted = np.asarray(predictor.predict(specs), dtype=float).reshape(-1)
    points = []
    for spec, p in zip(specs, predicted, strict=True):
        points.append({"arch": str(spec), "predicted": float(p), "measured": float(measure(spec))})
    ratios = [q["measured"] / q["predicted"] for q in points]
    return Calibration(float(np.median(ratios)), points)


@dataclass
class Correction:
    """What :func:`correct` did.

    Attributes:
        rounds: one record per measurement: ``round`` (0 = the searched arch), ``arch``, ``predicted`` (by the
            predictor in force when it was derived), ``measured`` (ms), ``error`` (measured / T - 1), ``factor`` (the
            scale applied to the base predictor after this measurement; absent on the last), ``stopped`` (why the
            loop ended early: T is infeasible on the rescaled predictor).
        within_tolerance: the last measurement is within the tolerance.
        predictor: the last rescaled latency predictor.
    """

    rounds: list[dict[str, Any]]
    within_tolerance: bool
    predictor: Predictor


def correct(
    run: str | Path,
    space: SearchSpace,
    targets: Sequence[Any],
    config: Any,
    measure: MeasureFn,
    *,
    tolerance: float = 0.02,
    rounds: int = 3,
    steps: int = 200,
    alpha_lr: float = 1e-2,
    data: Any = None,
    accuracy: bool | None = None,
) -> Correction:
    """Closed-loop correction of a finished search in ``run`` (see the module docstring); ``targets[0]`` must be
    the latency target. Each round: measure the derived arch; stop when within ``tolerance`` of T; else rescale the
    base predictor by measured / predicted(base) of that arch and :func:`~edgenas.search.lightnas.refine` the
    search for ``steps`` architecture steps, keeping its accuracy term on ``data`` (the search's images) unless
    ``accuracy`` is False (see :func:`~edgenas.search.engine.refine`). Returns after at most ``rounds``
    refinements (``rounds + 1`` measurements). ``summary.json`` of the run records the rounds under ``correction``.
    """
    from edgenas.search.config import Target
    from edgenas.search.engine import update_summary
    from edgenas.search.refine import refine

    if not targets or targets[0].name != "latency_ms":
        raise SearchError("the on-device correction needs a latency target first")
    if (config.accuracy if accuracy is None else accuracy) and data is None:
        raise SearchError("the correction keeps the search's accuracy term: pass its data (or accuracy=False)")
    latency = targets[0]
    base = latency.predictor
    from edgenas.spaces import load_specs

    arch = load_specs(Path(run) / "arch.json")[0]
    in_force = base
    history: list[dict[str, Any]] = []
    for round_ in range(rounds + 1):
        measured = float(measure(arch))
        error = measured / latency.value - 1.0
        record = {
            "round": round_,
            "arch": str(arch),
            "predicted": float(in_force.predict(arch)),
            "measured": measured,
            "error": error,
        }
        history.append(record)
        if abs(error) <= tolerance or round_ == rounds:
            break
        record["factor"] = measured / float(base.predict(arch))
        rescaled = scale_predictor(base, record["factor"])
        try:
            result = refine(
                run,
                space,
                [Target(rescaled, latency.value), *targets[1:]],
                config,
                steps,
                alpha_lr=alpha_lr,
                data=data,
                accuracy=accuracy,
            )
        except SearchError as error:  # the device is so far off that T left the rescaled predictor's range
            record["stopped"] = str(error)
            break
        in_force, arch = rescaled, result.arch
    within = abs(history[-1]["error"]) <= tolerance
    update_summary(
        run,
        correction={"rounds": history, "within_tolerance": within, "tolerance": tolerance},
    )
    return Correction(history, within, in_force)

"""Where to measure: architectures whose predicted latency lies where the targets are (beyond the thesis).

Uniform random archs of a layer-wise space pile up in the middle of its latency range (200 random ``mbv2-cifar``
archs spanned 2.92-5.94 ms on an AMD EPYC core while the space reaches 0.92-11.8 ms, ``issues show 14``), so a
predictor fitted on them extrapolates at the targets a user is most likely to set: the fast end. Two plans fix that:

* :func:`cover_specs` spreads archs evenly over the feasible range of a first predictor (fitted on a uniform sample),
  by walking random archs layer by layer until their prediction reaches each level;
* :func:`archs_near` finds archs predicted within a band around one value (the ``profile --near T`` mode and the
  pre-search calibration).

:func:`profile_covering` and :func:`profile_near` measure those plans into a store. Both are resumable: the uniform
half is seeded, the covering half is planned from a predictor fitted on exactly the uniform half's stored rows (the
same plan again after a kill), and archs already stored are skipped; ``profile_near`` counts the stored archs that
are already predicted near T.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgenas.errors import MeasurementError, SearchError, StoreError
from edgenas.hardware.device import Device
from edgenas.predictors.base import Predictor
from edgenas.search.budget import FeasibleRange, feasible_range, single_layer_neighbours
from edgenas.spaces import ArchSpec, SearchSpace

#: Share of a covering profile measured as uniform random archs (the rest is planned on a LUT fitted on them).
COVER_UNIFORM_SHARE = 0.5
#: Default relative band around a target for "near" (3%: a little wider than the 2% tolerance of a budget).
NEAR_BAND = 0.03
#: Random starts tried per wanted arch before a plan gives up on finding a new one.
STARTS_PER_ARCH = 20


@torch.no_grad()
def walk_towards(
    predictor: Predictor, space: SearchSpace, one_hot: torch.Tensor, value: float, band: float
) -> tuple[torch.Tensor, float]:
    """Change one layer at a time, the change that brings the prediction closest to ``value``, until the prediction
    is within ``band`` (relative) of it or no change gets closer; returns the arch (one-hot) and its prediction."""
    predicted = float(predictor(one_hot[None])[0])
    for _ in range(4 * space.num_layers):
        if abs(predicted - value) <= band * value:
            break
        neighbours, allowed = single_layer_neighbours(one_hot, space)
        values = predictor(neighbours)
        gaps = (values - value).abs()
        gaps[~allowed] = float("inf")
        best = int(gaps.argmin())
        if float(gaps[best]) >= abs(predicted - value):
            break
        one_hot, predicted = neighbours[best], float(values[best])
    return one_hot, predicted


def archs_near(
    predictor: Predictor,
    space: SearchSpace,
    value: float,
    n: int,
    *,
    band: float = NEAR_BAND,
    seed: int = 0,
    exclude: Iterable[str] = (),
) -> list[ArchSpec]:
    """``n`` distinct archs (none of ``exclude``, arch strings) predicted within ``band`` (relative) of ``value``:
    random archs walked by :func:`walk_towards`, as diverse as the predictor allows.

    Raises:
        SearchError: fewer than ``n`` such archs were found (a value at the edge of the feasible range).
    """
    rng = np.random.default_rng(seed)
    excluded = set(exclude)
    found: dict[str, ArchSpec] = {}
    for _attempt in range(STARTS_PER_ARCH * n):
        if len(found) == n:
            break
        start = space.one_hot(space.sample(int(rng.integers(2**31)), 1)[0])
        hot, predicted = walk_towards(predictor, space, start, value, band)
        spec = space.from_one_hot(hot)
        if abs(predicted - value) <= band * value and str(spec) not in excluded:
            found.setdefault(str(spec), spec)
    if len(found) < n:
        raise SearchError(
            f"only {len(found)} of {n} new archs predicted within {100 * band:g}% of {value:g} {predictor.meta.unit};"
            " the value is at the edge of the feasible range — ask for fewer archs or a wider band"
        )
    return list(found.values())


def cover_specs(
    predictor: Predictor,
    space: SearchSpace,
    n: int,
    *,
    seed: int = 0,
    exclude: Iterable[str] = (),
    reach: FeasibleRange | None = None,
) -> list[ArchSpec]:
    """Up to ``n`` distinct archs (none of ``exclude``) whose predictions are spread evenly over the predictor's
    feasible range over ``space`` (``reach`` when the caller has it), both ends included: one walk
    (:func:`walk_towards`) per level, from a random arch; a level whose walks only find archs already planned is left
    out."""
    if n < 1:
        return []
    rng_ = reach or feasible_range(predictor, space, seed=seed)
    levels = np.linspace(rng_.low, rng_.high, n) if n > 1 else np.array([(rng_.low + rng_.high) / 2])
    band = 0.5 * (rng_.high - rng_.low) / max(1, n - 1)  # half the spacing of the levels (absolute)
    rng = np.random.default_rng(seed)
    taken = set(exclude)
    plan = []
    for level in levels:
        for _attempt in range(STARTS_PER_ARCH):
            start = space.one_hot(space.sample(int(rng.integers(2**31)), 1)[0])
            hot, _ = walk_towards(predictor, space, start, float(level), band / float(level))
            spec = space.from_one_hot(hot)
            if str(spec) not in taken:
                taken.add(str(spec))
                plan.append(spec)
                break
    return plan


@dataclass
class CoverageReport:
    """What a covering or near-target profile measured.

    Attributes:
        device: the device name in the store.
        phases: one record per phase (``name``, ``requested``, ``measured``, ``skipped``, ``flagged``, ``seconds``;
            the covering phase adds the planning predictor's ``feasible`` range).
        planned: every arch of the plan, in order (strings).
    """

    device: str
    phases: list[dict[str, Any]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)

    @property
    def measured(self) -> int:
        return sum(p["measured"] for p in self.phases)

    @property
    def skipped(self) -> int:
        return sum(p["skipped"] for p in self.phases)

    @property
    def flagged(self) -> int:
        return sum(p["flagged"] for p in self.phases)

    @property
    def seconds(self) -> float:
        return sum(p["seconds"] for p in self.phases)


def _phase(name: str, report: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "requested": report.requested,
        "measured": report.measured,
        "skipped": report.skipped,
        "flagged": report.flagged,
        "seconds": report.seconds,
        **extra,
    }


def stored_table(store: Any, device: str, space: SearchSpace, key: Any, specs: Sequence[ArchSpec] | None = None):
    """The stored latencies of ``device`` under ``key`` (a :class:`~edgenas.hardware.MeasurementKey`) for ``space``
    (only ``specs`` when given), as an :class:`~edgenas.predictors.data.ArchTable`."""
    from edgenas.predictors import table_from_store

    table = table_from_store(
        store.path, device, space, runtime=key.runtime, batch=key.batch, resolution=key.resolution, threads=key.threads
    )
    if specs is None:
        return table
    wanted = {str(s) for s in specs}
    return table.subset(np.array([i for i, s in enumerate(table.specs) if str(s) in wanted], dtype=int))


def profile_covering(
    space: SearchSpace,
    device: Device,
    store: Any,
    n: int,
    *,
    seed: int = 0,
    uniform_share: float = COVER_UNIFORM_SHARE,
    predictor_kind: str = "lut",
    **profile_options: Any,
) -> CoverageReport:
    """Profile ``n`` archs that cover the feasible latency range: ``uniform_share`` of them uniform random (seeded),
    then the rest planned by :func:`cover_specs` on a ``predictor_kind`` predictor fitted on the uniform ones' stored
    rows. ``profile_options`` go to ``device.profile`` (device_name, interleave, energy, on_progress)."""
    from edgenas.predictors import FitConfig, fit_predictor

    if not 0 < uniform_share <= 1:
        raise MeasurementError(f"the uniform share of a covering profile must be in (0, 1], got {uniform_share}")
    n_uniform = max(min(n, 4), math.ceil(uniform_share * n))
    uniform = space.sample(seed=seed, n=n_uniform)
    first = device.profile(uniform, store, **profile_options)
    report = CoverageReport(first.device, [_phase("uniform", first)], [str(s) for s in uniform])
    if n_uniform >= n:
        return report
    table = stored_table(store, first.device, space, first.key, uniform)
    planner = fit_predictor(predictor_kind, table, FitConfig(seed=seed))
    reach = feasible_range(planner, space, seed=seed)
    plan = cover_specs(planner, space, n - n_uniform, seed=seed, exclude=report.planned, reach=reach)
    second = device.profile(plan, store, **profile_options)
    report.phases.append(_phase("cover", second, feasible=[reach.low, reach.high], planner=predictor_kind))
    report.planned += [str(s) for s in plan]
    return report


def profile_near(
    space: SearchSpace,
    device: Device,
    store: Any,
    values: Sequence[float],
    n: int,
    *,
    predictor: Predictor | None = None,
    band: float = NEAR_BAND,
    seed: int = 0,
    **profile_options: Any,
) -> CoverageReport:
    """Add archs predicted within ``band`` of each of ``values`` until the store holds ``n`` such archs per value for
    this device and runtime (those already stored count). The predictor is ``predictor`` or, by default, a LUT
    fitted on the store's rows of this device and runtime.

    Raises:
        MeasurementError: no ``predictor`` and no rows of this device to fit one on (profile the space first), or a
            device whose name in the store only a measurement tells (a remote one) without ``device_name``.
        SearchError: fewer than ``n`` archs predicted near a value exist (see :func:`archs_near`).
    """
    from edgenas.predictors import FitConfig, fit_predictor

    name = profile_options.get("device_name") or device.store_name()
    if name is None:
        raise MeasurementError(f"name the device in the store to add archs near a value on {device.name}")
    try:
        stored = stored_table(store, name, space, device.key())
    except (MeasurementError, StoreError) as error:
        if predictor is None:
            raise MeasurementError(
                f"{error}: profile the space first (edgenas profile {space.name} --n 100 --cover) or pass --predictor"
            ) from error
        stored = None
    if predictor is None:
        predictor = fit_predictor("lut", stored, FitConfig(seed=seed))
    reach = feasible_range(predictor, space, seed=seed)
    outside = [v for v in values if not reach.low <= v <= reach.high]
    if outside:
        raise SearchError(
            f"{', '.join(f'{v:g}' for v in outside)} {predictor.meta.unit} lies outside what the planning predictor "
            f"reaches over {space.name} ({reach.low:.4g}..{reach.high:.4g} {predictor.meta.unit}): no arch is "
            "predicted near it"
        )
    report = CoverageReport(name)
    known = [str(s) for s in stored.specs] if stored is not None else []
    guesses = np.asarray(predictor.predict(stored.specs), dtype=float) if stored is not None else np.zeros(0)
    for value in values:
        already = int(np.sum(np.abs(guesses - value) <= band * value))
        plan = archs_near(predictor, space, value, max(0, n - already), band=band, seed=seed, exclude=known)
        done = device.profile(plan, store, **profile_options)
        report.phases.append(_phase(f"near {value:g}", done, target=value, already_near=already))
        report.planned += [str(s) for s in plan]
        known += [str(s) for s in plan]
    return report


def data_range_warning(predictor: Predictor, value: float, *, space: str = "SPACE") -> str | None:
    """A warning when ``value`` lies outside the values ``predictor`` was fitted on (its prediction there is an
    extrapolation), with the fitted range and how to add measurements there; None inside the range."""
    low, high = predictor.meta.value_range
    if low <= value <= high:
        return None
    unit = predictor.meta.unit
    return (
        f"the target {value:.4g} {unit} lies outside the {low:.4g}..{high:.4g} {unit} the predictor was fitted on "
        f"({predictor.meta.train_size} archs of {predictor.meta.device}): its predictions there are extrapolations. "
        f"Measure archs near it (edgenas profile {space} --near {value:.4g} --store STORE) and fit the predictor "
        "again, or close the loop on the device (--close-loop 12)"
    )

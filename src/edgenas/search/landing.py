"""Bringing a search's result onto its target on the device: the measurers, the calibration before a search, and
:func:`land` — the one function that turns a finished search into an arch measured on T, used by ``edgenas search``
and the pipeline's search stage alike — and :func:`land_found`, the same closed loop for an evolved result (the
channel search's configuration, Domino's mask), whose preference is to change as little of it as it can.

A :class:`LandingPolicy` names the way (:data:`LANDINGS`): ``measure`` (one measurement, the verdict), ``correct``
(rescale the predictor to the measured arch and refine the search, round by round;
``edgenas.search.calibrate.correct``) or ``close-loop`` (measure the neighbours the search prefers, predicted by a
locally corrected predictor; ``edgenas.search.closed_loop``). Every way records the same ``measured`` section in
``summary.json``: ``mode``, ``median_ms`` (the verdict), ``error``, ``within_tolerance``, ``tolerance``, ``loads``,
``runtime`` and ``rounds`` (one per measurement: ``round``, ``arch``, ``predicted``, ``measured``, ``error``).
Nothing here prints: a caller that shows progress passes a ``status`` context.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgenas.errors import EdgeNASError, SearchError
from edgenas.hardware.device import Device
from edgenas.hardware.measure import MeasureFn
from edgenas.hardware.reference import Anchor, anchor_from_level, reference_arch
from edgenas.predictors.base import Predictor
from edgenas.search.closed_loop import Band, LoopResult, LoopStore, close_loop, searched_alpha
from edgenas.search.config import SearchConfig, Target
from edgenas.search.engine import update_summary
from edgenas.spaces import ArchSpec, SearchSpace, space_of

__all__ = [
    "LANDINGS",
    "LandingPolicy",
    "land",
    "land_found",
    "measure_result",
    "metric_measurer",
    "preference_for",
    "store_anchor",
    "store_hook",
]


def metric_measurer(device: Device, metric: str, loads: int) -> MeasureFn:
    """The target's metric of an arch on ``device``: latency (ms, median over ``loads`` loads) or energy (mJ, one
    load, where the device reads a counter).

    Raises:
        SearchError: an energy target on a device without an energy counter.
    """
    from edgenas.hardware.device import energy_unavailable, latency_fn

    if metric == "latency_ms":
        return latency_fn(device, loads)
    reason = energy_unavailable(device)
    if reason is not None:
        raise SearchError(f"--close-loop on an energy target needs an energy counter on {device.name}: {reason}")
    return lambda arch: float(device.measure([arch])[0].energy_mj)  # type: ignore[arg-type]


def store_hook(
    store: Path | None,
    store_device: str | None,
    metric: str,
    runtime: str,
    space: SearchSpace,
    log: Any = None,
) -> tuple[Any, list[tuple[ArchSpec, float]]]:
    """The closed loop's store hook (add every measurement under the device) and its prior (the store's rows of
    that device, at its nominal level); (None, []) without a store. ``log``: the loop's
    :class:`~edgenas.hardware.device.MeasurementLog`, whose latest measurement of an arch gives the row its session
    (the reference's level beside it) and relative value."""
    if store is None:
        return None, []
    from edgenas.hardware import MeasurementStore
    from edgenas.predictors import table_from_store

    key, device = _store_key(store_device, metric, runtime, space)
    try:
        table = table_from_store(store, device, space, metric=metric, runtime=runtime, batch=1, threads=1)
        prior = list(zip(table.specs, table.values.tolist(), strict=True))
    except EdgeNASError:  # no rows of this device yet: the loop starts from its own measurements
        prior = []

    anchor = log.device.anchor if log is not None else None
    reference = anchor.reference if anchor is not None and isinstance(anchor.reference, ArchSpec) else None

    def record(arch: ArchSpec, value: float) -> None:
        m = log.latest.get(str(arch)) if reference is not None else None
        with MeasurementStore(store) as db:
            number = db.device_id(device, source="edgenas search --close-loop")
            if m is None or m.relative is None or m.level_ms is None:
                db.add(number, arch, key, value)
                return
            session = db.add_session(number, key, str(reference), m.level_ms, space_hash=reference.space_hash)
            db.add(number, arch, key, m.median_ms, session=session, relative=m.relative)

    return record, prior


def store_anchor(
    store: Path | None,
    store_device: str | None,
    metric: str,
    runtime: str,
    space: SearchSpace,
    predictor: Predictor | None = None,
) -> Anchor:
    """The anchor a landing measures beside: the reference the store's sessions of this device time at the store's
    nominal level; else the reference and level the predictor was fitted at (``meta.level``); else the space's
    reference without a nominal level (the levels are recorded, the milliseconds are those of the moment)."""
    from edgenas.hardware import MeasurementStore

    reference, nominal = reference_arch(space), None
    if store is not None and store.is_file():
        key, device = _store_key(store_device, metric, runtime, space)
        with MeasurementStore(store, create=False) as db:
            known = db.reference(device, key, space.config_hash)  # None: an unknown device, or no sessions
            if known is not None:
                return Anchor(space.parse(known), db.nominal_level(device, key, known))
    fitted_at = anchor_from_level(predictor.meta.level, space) if predictor is not None else None
    return fitted_at if fitted_at is not None and fitted_at.nominal_ms else Anchor(reference, nominal)


def _store_key(store_device: str | None, metric: str, runtime: str, space: SearchSpace) -> tuple[Any, str]:
    """The key of a landing's rows (batch 1, one thread, the space's resolution) and the device's name in a store."""
    from edgenas.hardware import default_device_name, fingerprint
    from edgenas.hardware.store import MeasurementKey

    key = MeasurementKey(runtime, metric, 1, space.resolution, 1)
    return key, store_device or default_device_name(fingerprint("cuda" if "cuda" in runtime else "cpu"))


def measure_result(
    arch: ArchSpec, device: Device, targets: list[Target], tolerance: float, run: Path
) -> dict[str, Any]:
    """Measure the derived arch on ``device`` (one load), compare it with the latency target and record it as
    ``measured`` in ``run/summary.json``."""
    latency = next((t for t in targets if t.name == "latency_ms"), None)
    (m,) = device.measure([arch])
    result: dict[str, Any] = {"runtime": device.name, "median_ms": m.median_ms, "iqr_ms": m.iqr_ms}
    if latency is not None:
        error = m.median_ms / latency.value - 1.0
        result.update(error=error, within_tolerance=abs(error) <= tolerance, tolerance=tolerance)
    update_summary(run, measured=result)
    return result


#: Measurements the closed loop may spend by default (``edgenas.search.closed_loop.LOOP_BUDGET``).
DEFAULT_LOOP_BUDGET = 12
#: Alpha steps of each correction round.
DEFAULT_CORRECT_STEPS = 200


@dataclass(frozen=True)
class LandingPolicy:
    """How :func:`land` brings a finished search onto its target.

    Attributes:
        mode: a name of :data:`LANDINGS`.
        budget: ``correct``: rounds (measurements = rounds + 1 at most); ``close-loop``: measurements; ``measure``:
            ignored.
        tolerance: accepted relative miss of the measured value.
        loads: the measurer's loads per arch (recorded; the caller's measurer applies them).
        steps: ``correct``: alpha steps per round.
    """

    mode: str = "close-loop"
    budget: int = DEFAULT_LOOP_BUDGET
    tolerance: float = 0.02
    loads: int = 3
    steps: int = DEFAULT_CORRECT_STEPS

    def check(self) -> None:
        """Raises SearchError: an unknown mode, a budget, loads or steps below 1, a tolerance outside (0, 1)."""
        if self.mode not in LANDINGS:
            raise SearchError(f"unknown landing {self.mode!r}; one of {', '.join(LANDINGS)}")
        if min(self.budget, self.loads, self.steps) < 1 or not 0 < self.tolerance < 1:
            raise SearchError("a landing needs budget, loads and steps >= 1 and a tolerance in (0, 1)")


def land(
    run: Path,
    space: SearchSpace,
    targets: list[Target],
    config: SearchConfig,
    measure: MeasureFn,
    policy: LandingPolicy,
    *,
    runtime: str,
    data: Any = None,
    record: Callable[[ArchSpec, float], None] | None = None,
    prior: list[tuple[ArchSpec, float]] | None = None,
    status: AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """Land the finished search in ``run`` on ``targets[0]`` by ``policy``: ``arch.json`` becomes the landed arch,
    ``summary.json`` gets ``searched_arch`` (kept from the first call: a resumed landing starts from the search's
    own result) and, for a latency target, the ``measured`` section (module docstring), which is returned (for an
    energy target, the closed loop's record). ``measure`` returns the target's metric of an arch; ``record``
    receives every measurement and ``prior`` seeds the closed loop (a store's rows of this device); ``data``: the
    search's images, which the correction's refinement keeps training on.

    Raises:
        SearchError: a bad policy, a landing that needs a latency target given another, or a landing other than the
            closed loop for a search whose target acts in the landing only.
    """
    from edgenas.rundir import read_summary
    from edgenas.spaces import load_specs, save_specs

    policy.check()
    if not targets or (targets[0].name != "latency_ms" and policy.mode != "close-loop"):
        raise SearchError(f"the {policy.mode!r} landing needs a latency target first; the closed loop lands any metric")
    if config.budget_term == "landing" and policy.mode != "close-loop":
        raise SearchError(
            f"a search with its target in the landing only (budget_term 'landing') is not near T: the {policy.mode!r}"
            " landing cannot meet it; land it with the closed loop"
        )
    summary = read_summary(run)
    if "searched_arch" in summary:  # a landing killed half-way starts again from what the search found
        save_specs(run / "arch.json", [space.parse(summary["searched_arch"])])
    else:
        update_summary(run, searched_arch=str(load_specs(run / "arch.json")[0]))
    with status or nullcontext():
        rounds, within, value = LANDINGS[policy.mode](
            run, space, targets, config, measure, policy, data=data, record=record, prior=prior or []
        )
    if targets[0].name != "latency_ms":
        return read_summary(run)["closed_loop"]
    measured = {
        "mode": policy.mode,
        "runtime": runtime,
        "median_ms": value,
        "loads": policy.loads,
        "error": value / targets[0].value - 1,
        "within_tolerance": within,
        "tolerance": policy.tolerance,
        "rounds": rounds,
    }
    update_summary(run, measured=measured)
    return measured


#: What a landing returns: one record per measurement, whether the verdict is within the tolerance, the verdict.
_Landed = tuple[list[dict[str, Any]], bool, float]


def _measure_once(
    run: Path,
    space: SearchSpace,
    targets: list[Target],
    config: Any,
    measure: MeasureFn,
    policy: LandingPolicy,
    **_: Any,
) -> _Landed:
    """One measurement of the searched arch: the verdict, nothing changed."""
    from edgenas.spaces import load_specs

    arch = load_specs(run / "arch.json")[0]
    value = float(measure(arch))
    target = targets[0]
    error = value / target.value - 1
    record = {
        "round": 0,
        "arch": str(arch),
        "predicted": float(target.predictor.predict(arch)),
        "measured": value,
        "error": error,
    }
    return [record], abs(error) <= policy.tolerance, value


def _correct(
    run: Path,
    space: SearchSpace,
    targets: list[Target],
    config: Any,
    measure: MeasureFn,
    policy: LandingPolicy,
    *,
    data: Any = None,
    **_: Any,
) -> _Landed:
    """Rescale and refine, ``policy.budget`` rounds at most (:func:`edgenas.search.calibrate.correct`); the last
    rescaled predictor is kept as ``predictor_corrected.pt``."""
    from edgenas.search.calibrate import correct

    correction = correct(
        run,
        space,
        targets,
        config,
        measure,
        tolerance=policy.tolerance,
        rounds=policy.budget,
        steps=policy.steps,
        data=data,
    )
    correction.predictor.save(run / "predictor_corrected.pt")
    return correction.rounds, correction.within_tolerance, correction.rounds[-1]["measured"]


def _close_loop(
    run: Path,
    space: SearchSpace,
    targets: list[Target],
    config: Any,
    measure: MeasureFn,
    policy: LandingPolicy,
    *,
    record: Any = None,
    prior: Any = (),
    **_: Any,
) -> _Landed:
    """Measured neighbours until one the search prefers lands within the tolerance
    (:func:`edgenas.search.closed_loop.close_loop`); ``arch.json`` becomes the chosen arch."""
    from edgenas.spaces import load_specs, save_specs

    target = targets[0]
    loop = close_loop(
        load_specs(run / "arch.json")[0],
        searched_alpha(run),
        target.predictor,
        target.value,
        measure,
        tolerance=policy.tolerance,
        budget=policy.budget,
        store=LoopStore(prior, record),
    )
    save_specs(run / "arch.json", [loop.chosen])
    update_summary(run, closed_loop=loop.as_dict())
    rounds = [
        {"round": i, "arch": m["arch"], "predicted": m["corrected"], "measured": m["measured"], "error": m["error"]}
        for i, m in enumerate(loop.measurements)
    ]
    return rounds, loop.within_tolerance, loop.value


#: Logit a layer loses per step away from the found choice in :func:`preference_for`: at 5 nats a step, every arch
#: one step further from the found one scores lower than any nearer one (the log-softmax's constant stays < 0.1 nat).
DISTANCE_LOGIT = 5.0


def preference_for(found: ArchSpec, *, ordered: bool = False) -> torch.Tensor:
    """Architecture logits (``L x K``) for the closed loop that prefer ``found`` and then the archs nearest to it:
    0 on each layer's found choice, ``-DISTANCE_LOGIT`` per step away from it — one step per changed layer, or with
    ``ordered`` (choices in an order, e.g. channel scales) per position along the layer's choices. An evolved result
    has no alpha; what its search knows is that it is the best it scored, so the landing changes as little as it can."""
    space = space_of(found)
    positions = torch.arange(space.num_ops, dtype=torch.float32)
    chosen = torch.tensor(found.choices, dtype=torch.float32)[:, None]
    steps = (positions - chosen).abs() if ordered else (positions != chosen).float()
    return -DISTANCE_LOGIT * steps


def land_found(
    found: ArchSpec,
    predictor: Predictor,
    band: Band,
    measure: MeasureFn,
    policy: LandingPolicy,
    *,
    ordered: bool = False,
) -> LoopResult:
    """Land an evolved result (the channel search's configuration, Domino's mask) on ``band`` (T, the tolerance and
    ``le``/``eq``) by ``policy``: ``measure`` measures it once; ``close-loop`` runs the closed loop with
    :func:`preference_for` as its preference (``policy.budget`` measurements at most). ``band.tolerance`` rules
    over ``policy.tolerance``: the search's own band.

    Raises:
        SearchError: a bad policy, or ``correct`` (it refines a supernet's alpha: an evolved result has none).
    """
    policy.check()
    if policy.mode == "correct":
        raise SearchError("the 'correct' landing refines a supernet's alpha; land an evolved result by 'close-loop'")
    return close_loop(
        found,
        preference_for(found, ordered=ordered),
        predictor,
        band.value,
        measure,
        tolerance=band.tolerance,
        budget=1 if policy.mode == "measure" else policy.budget,
        constraint=band.constraint,
    )


#: The ways to land, by :attr:`LandingPolicy.mode`.
LANDINGS: dict[str, Callable[..., _Landed]] = {
    "measure": _measure_once,
    "correct": _correct,
    "close-loop": _close_loop,
}

"""Measuring architectures: one arch (``measure_arch``) or many into the store, resumably (``profile``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from edgenas.hardware.affinity import one_core
from edgenas.hardware.energy import energy_meter, measure_energy
from edgenas.hardware.fingerprint import default_device_name, fingerprint
from edgenas.hardware.protocol import (
    DEFAULT_PROTOCOL,
    LatencyStats,
    Protocol,
    measure,
    measure_beside,
    measure_interleaved,
)
from edgenas.hardware.reference import reference_arch
from edgenas.hardware.runtimes import Runtime
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.spaces import ArchSpec, SearchSpace, space_of

#: Measures one architecture on a device and returns its latency (ms): what the loops that land on a target call
#: (calibration, correction, the closed loop), whatever measures underneath (a runtime here, a remote runner).
MeasureFn = Callable[[ArchSpec], float]


@dataclass(frozen=True)
class ArchMeasurement:
    """Latency (and energy when a counter exists) of one arch on one runtime.

    Attributes:
        spec: the architecture.
        latency: latency statistics (ms).
        energy_mj: energy per inference (mJ), or None.
        energy_note: which counter measured the energy, or why there is none.
    """

    spec: ArchSpec
    latency: LatencyStats
    energy_mj: float | None
    energy_note: str


def measure_arch(
    spec: ArchSpec, runtime: Runtime, protocol: Protocol = DEFAULT_PROTOCOL, *, energy: bool = True
) -> ArchMeasurement:
    """Build ``spec``, load it into ``runtime`` and measure its latency (and its energy when a counter is readable)."""
    model = space_of(spec).build(spec)
    with runtime.load(model) as session:
        stats = measure(session.run, protocol)
        meter, note = energy_meter(runtime.device_type) if energy else (None, "energy not requested")
        mj = measure_energy(session.run, meter).mj_per_run if meter is not None else None
    return ArchMeasurement(spec, stats, mj, note)


def median_latency_ms(spec: ArchSpec, runtime: Runtime, loads: int = 3, protocol: Protocol = DEFAULT_PROTOCOL) -> float:
    """Median latency (ms) of ``spec`` over ``loads`` separate loads, each measured with ``protocol``.

    One load's median moves by 1-4% from load to load on a shared CPU (memory placement, neighbours); the median of
    a few loads is what a closed loop on the device can rely on.
    """
    if loads < 1:
        raise ValueError(f"loads must be at least 1, got {loads}")
    return float(
        np.median([measure_arch(spec, runtime, protocol, energy=False).latency.median_ms for _ in range(loads)])
    )


def measure_modules(
    models: Sequence[nn.Module],
    runtime: Runtime,
    protocol: Protocol = DEFAULT_PROTOCOL,
    *,
    reference: nn.Module | None = None,
) -> list[LatencyStats]:
    """Load ``models`` into ``runtime`` and measure them round-robin (one alone with :func:`measure`), so a drift of
    the machine hits them alike; with a ``reference``, it is timed in every round too and each statistic carries
    its level and relative value (:func:`~edgenas.hardware.protocol.measure_beside`). Every session is closed, also
    when a load fails."""
    sessions = []
    try:
        for model in [*models, *([reference] if reference is not None else [])]:
            sessions.append(runtime.load(model))  # one by one so that a failing load still closes the ones before it
        runs = [s.run for s in sessions]
        with one_core(protocol.pin and runtime.options.threads == 1):
            if reference is not None:
                return measure_beside(runs[:-1], runs[-1], protocol)[0]
            return [measure(runs[0], protocol)] if len(runs) == 1 else measure_interleaved(runs, protocol)
    finally:
        for session in sessions:
            session.close()


def profile_reference(
    store: MeasurementStore, device: int, key: MeasurementKey, space: SearchSpace, given: ArchSpec | None = None
) -> ArchSpec:
    """The reference a profile of ``space`` times beside each chunk: ``given`` (an arch of any space: a run's
    channel profile times the run's reference, so its levels are the run's), else the space's
    (:func:`~edgenas.hardware.reference.reference_arch`) — unless the store's sessions of this device already time
    another arch of that reference's space, which is kept (a device keeps its reference)."""
    ref_space = space_of(given) if given is not None else space
    stored = store.reference(device, key, ref_space.config_hash)
    if stored is not None:
        return ref_space.parse(stored)
    return given if given is not None else reference_arch(space)


@dataclass
class ProfileReport:
    """What a profiling run did.

    Attributes:
        device: the device name in the store.
        requested: distinct archs asked for.
        skipped: archs already stored (not measured again).
        measured: archs measured now.
        flagged: measurements whose relative IQR stayed above the threshold.
        seconds: wall time of the measuring part.
        energy_note: which counter measured energy, or why none did.
        rows: per arch measured now, its statistics.
        key: the store key of the latency rows.
        reference: the reference arch timed beside each chunk (its string), where one was.
    """

    device: str
    requested: int
    skipped: int
    measured: int = 0
    flagged: int = 0
    seconds: float = 0.0
    energy_note: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    key: MeasurementKey | None = None
    reference: str | None = None


ProgressHook = Callable[[int, int, ArchSpec, LatencyStats], None]


def profile(
    specs: Sequence[ArchSpec],
    runtime: Runtime,
    store: MeasurementStore,
    *,
    protocol: Protocol = DEFAULT_PROTOCOL,
    device_name: str | None = None,
    interleave: int = 1,
    energy: bool = False,
    on_progress: ProgressHook | None = None,
    reference: ArchSpec | None = None,
) -> ProfileReport:
    """Measure ``specs`` on ``runtime`` into ``store``, skipping those already stored; each row is committed at once.
    Each chunk is one session that also times the space's reference (:func:`profile_reference`) round by round: the
    store records the session's level and each row's value relative to it.

    Args:
        specs: the architectures (duplicates are measured once).
        runtime: where to measure.
        store: the measurement store.
        protocol: warm-up, repeats and noise handling.
        device_name: the device's name in the store (default: derived from the fingerprint).
        interleave: measure this many archs round-robin at a time (1: one after the other).
        energy: also measure energy per inference when a counter is readable.
        on_progress: called after each stored arch with (done, total, spec, stats).
        reference: the reference to time when the store has none yet for this device (default: the space's).
    """
    import time

    info = fingerprint(runtime.device_type)
    name = device_name or default_device_name(info)
    device = store.device_id(name, kind="measured", fingerprint=info, source="edgenas profile")
    o = runtime.options
    key = MeasurementKey(runtime.name, "latency_ms", o.batch, o.resolution, o.threads)
    unique = list(dict.fromkeys(specs))
    todo = [s for s in unique if not store.has(device, s, key)]
    report = ProfileReport(name, len(unique), len(unique) - len(todo), key=key)
    meter, report.energy_note = energy_meter(runtime.device_type) if energy else (None, "energy not requested")
    if todo:
        ref = profile_reference(store, device, key, space_of(todo[0]), reference)
        report.reference = str(ref)
    start = time.perf_counter()
    for i in range(0, len(todo), max(1, interleave)):
        chunk = todo[i : i + max(1, interleave)]
        sessions = []
        try:
            for spec in [*chunk, ref]:  # appended one by one so that a failing load still closes the ones before it
                sessions.append(runtime.load(space_of(spec).build(spec)))
            with one_core(protocol.pin and o.threads == 1):
                results, level = measure_beside([s.run for s in sessions[:-1]], sessions[-1].run, protocol)
            session_id = store.add_session(device, key, str(ref), level.median_ms, space_hash=ref.space_hash)
            for spec, session, stats in zip(chunk, sessions[:-1], results, strict=True):
                store.add(
                    device,
                    spec,
                    key,
                    stats.median_ms,
                    iqr=stats.iqr_ms,
                    mean=stats.mean_ms,
                    minimum=stats.min_ms,
                    n=stats.n,
                    flagged=stats.flagged,
                    session=session_id,
                    relative=stats.relative,
                )
                if meter is not None:
                    mj = measure_energy(session.run, meter).mj_per_run
                    store.add(
                        device, spec, MeasurementKey(runtime.name, "energy_mJ", o.batch, o.resolution, o.threads), mj
                    )
                report.measured += 1
                report.flagged += int(stats.flagged)
                report.rows.append({"arch": str(spec), **stats.as_dict()})
                if on_progress is not None:
                    on_progress(report.skipped + report.measured, report.requested, spec, stats)
        finally:
            for session in sessions:
                session.close()
    report.seconds = time.perf_counter() - start
    return report

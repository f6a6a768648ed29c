"""One device: every caller that measures (the search loops, the channel search, Domino, Comfort Zone scaling, the
pipeline and the CLI) measures through a :class:`Device` (issue 28: one device).

A device measures *models* — architectures of a registered space, or any ``nn.Module`` — round-robin in one
session, so a drift of the machine hits them alike, and returns one :class:`Measurement` each. ``loads`` separate
loads (sessions) are taken and their medians' median kept: one load's median moves by 1-4% from load to load on a
shared CPU (memory placement, neighbours). A device also profiles archs into a measurement store.

**Anchored measurement** (issue 30): a device given an :class:`~edgenas.hardware.reference.Anchor` times its
reference beside everything it measures, round by round, and each :class:`Measurement` carries the level of its
session (the reference's latency then), its relative value (its latency over the reference's) and the nominal level;
``nominal_ms`` — relative value x nominal level — is the latency in a unit that the device's drift does not move,
which is what the loops landing on a target compare with it (:func:`latency_fn`). Profiling always times the
reference beside each chunk, so a store's rows carry their sessions' levels.

Three kinds:

* :class:`LocalDevice` — a runtime on this machine (``ort-cpu``, ``torch-cpu``, ``ort-cuda``, …).
* :class:`~edgenas.hardware.remote.RemoteDevice` — a machine that cannot run edgenas: the models are exported to ONNX
  with a manifest, a command template (``ssh pi python runner.py {dir}``) runs the stand-alone runner there, and the
  results are read back. One load is one run of the command (a fresh process on the device).
* :class:`SimulatedDevice` — a function of the arch (a predictor, a benchmark's table).

:func:`open_device` picks the kind from a runtime name and an optional command template, which is what a CLI
``--remote CMD`` option and the run config's ``device.remote`` give.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol as TypingProtocol
from typing import runtime_checkable

from torch import nn

from edgenas.errors import MeasurementError
from edgenas.hardware.energy import energy_meter, measure_energy
from edgenas.hardware.fingerprint import default_device_name, fingerprint
from edgenas.hardware.measure import ProfileReport, measure_modules, profile
from edgenas.hardware.measurement import Measurement, anchor_arch, measurement_from_loads
from edgenas.hardware.protocol import DEFAULT_PROTOCOL, LatencyStats, Protocol
from edgenas.hardware.reference import Anchor
from edgenas.hardware.runtimes import Runtime, RuntimeOptions, get_runtime
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.spaces import ArchSpec, space_of

__all__ = [
    "Device",
    "LocalDevice",
    "Measurement",
    "SimulatedDevice",
    "energy_unavailable",
    "latency_fn",
    "open_device",
]

#: What a device measures: an architecture of a registered space (built here) or a module.
Measurable = ArchSpec | nn.Module
#: What a remote device's profile says of energy.
REMOTE_LATENCY_ONLY = "a remote device measures latency only (the runner reads no energy counter)"
#: Called after each profiled arch with (done, total, a short status line).
ProfileProgress = Callable[[int, int, str], None]


@runtime_checkable
class Device(TypingProtocol):
    """Where latency is measured. ``name`` says which (``ort-cpu``, ``remote: CMD``); ``options`` fix the input of
    everything measured (batch, resolution, threads): open a device at the resolution of the space it measures."""

    name: str
    options: RuntimeOptions
    protocol: Protocol
    anchor: Anchor | None

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        """Measure ``items`` round-robin, ``loads`` separate times; one :class:`Measurement` per item, in order."""
        ...

    def profile(
        self,
        specs: Sequence[ArchSpec],
        store: MeasurementStore,
        *,
        device_name: str | None = None,
        energy: bool = False,
        interleave: int = 1,
        on_progress: ProfileProgress | None = None,
    ) -> ProfileReport:
        """Measure ``specs`` (one space) into ``store`` (``device_name``: the device's name there; default
        :meth:`store_name`, or the runner's fingerprint); stored ones are skipped where the device can tell, so a
        killed call resumes. The report's ``key`` files its rows."""
        ...

    def key(self) -> MeasurementKey:
        """The store key of this device's latencies."""
        ...

    def store_name(self) -> str | None:
        """The device's default name in a store, or None where only a measurement tells it (a remote device's
        fingerprint comes back with its results)."""
        ...

    def with_options(self, options: RuntimeOptions) -> Device:
        """The same device fed another input (a layer timed alone has its own channels and resolution)."""
        ...

    def with_anchor(self, anchor: Anchor | None) -> Device:
        """The same device timing ``anchor``'s reference beside everything it measures (None: no reference)."""
        ...

    def energy_reading(self) -> tuple[bool, str]:
        """Whether the device reads energy per inference, and a sentence saying with what counter or why not."""
        ...


def modules_of(items: Sequence[Measurable]) -> list[nn.Module]:
    """The modules to load: an arch built by its space, a module as it is."""
    return [space_of(x).build(x) if isinstance(x, ArchSpec) else x for x in items]


def labels_of(items: Sequence[Measurable], labels: Sequence[str]) -> list[str]:
    """The labels given (one per item), else an arch's string or ``model i``."""
    if labels and len(labels) != len(items):
        raise MeasurementError(f"{len(labels)} labels for {len(items)} models")
    return list(labels) or [str(x) if isinstance(x, ArchSpec) else f"model {i}" for i, x in enumerate(items)]


def check_request(items: Sequence[Measurable], loads: int) -> None:
    """Raises MeasurementError: nothing to measure, or fewer than one load."""
    if loads < 1:
        raise MeasurementError(f"loads must be at least 1, got {loads}")
    if not items:
        raise MeasurementError("nothing to measure")


@dataclass
class LocalDevice:
    """A runtime on this machine.

    Attributes:
        runtime: the runtime's name (:data:`edgenas.hardware.RUNTIMES`), or a runtime object (a synthetic one in
            tests; it is copied with the device's options).
        options: batch, resolution and threads of the input.
        protocol: warm-up, repeats and noise handling of one load.
        energy: also read energy per inference where the device has a counter (one load, after the latency).
        anchor: the reference timed beside every measurement and the nominal level (None: none).
    """

    runtime: str | Runtime
    options: RuntimeOptions
    protocol: Protocol = DEFAULT_PROTOCOL
    energy: bool = False
    anchor: Anchor | None = None

    @property
    def name(self) -> str:
        return self.runtime if isinstance(self.runtime, str) else self.runtime.name

    def session_runtime(self, options: RuntimeOptions | None = None) -> Runtime:
        """The runtime object with ``options`` (default: the device's); raises RuntimeUnavailableError where it is
        not installed."""
        options = options or self.options
        if isinstance(self.runtime, str):
            return get_runtime(self.runtime, options)
        runtime = copy.copy(self.runtime)
        runtime.options = options
        return runtime

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        check_request(items, loads)
        names, options, anchor = labels_of(items, labels), self.options, self.anchor
        runtime, models = self.session_runtime(options), modules_of(items)
        reference = modules_of([anchor.reference])[0] if anchor is not None else None
        per_load = [measure_modules(models, runtime, self.protocol, reference=reference) for _ in range(loads)]
        energies = self._energy(models, runtime) if self.energy else [None] * len(models)
        return [
            measurement_from_loads(names[i], [load[i] for load in per_load], runtime.name, options, anchor, energies[i])
            for i in range(len(models))
        ]

    @staticmethod
    def _energy(models: Sequence[nn.Module], runtime: Runtime) -> list[float | None]:
        meter, _ = energy_meter(runtime.device_type)
        if meter is None:
            return [None] * len(models)
        values: list[float | None] = []
        for model in models:
            with runtime.load(model) as session:
                values.append(measure_energy(session.run, meter).mj_per_run)
        return values

    def profile(
        self,
        specs: Sequence[ArchSpec],
        store: MeasurementStore,
        *,
        device_name: str | None = None,
        energy: bool = False,
        interleave: int = 1,
        on_progress: ProfileProgress | None = None,
    ) -> ProfileReport:
        runtime = self.session_runtime()
        hook = None
        if on_progress is not None:
            hook = lambda done, total, spec, stats: on_progress(done, total, f"last {stats.median_ms:.3f} ms")  # noqa: E731
        report = profile(
            specs,
            runtime,
            store,
            protocol=self.protocol,
            device_name=device_name,
            interleave=interleave,
            energy=energy,
            on_progress=hook,
            reference=anchor_arch(self.anchor),
        )
        return report

    def key(self) -> MeasurementKey:
        o = self.options
        return MeasurementKey(self.session_runtime().name, "latency_ms", o.batch, o.resolution, o.threads)

    def store_name(self) -> str | None:
        return default_device_name(fingerprint(self.session_runtime().device_type))

    def with_options(self, options: RuntimeOptions) -> Device:
        return replace(self, options=options)

    def with_anchor(self, anchor: Anchor | None) -> Device:
        return replace(self, anchor=anchor)

    def energy_reading(self) -> tuple[bool, str]:
        if not self.energy:
            return False, "energy not requested"
        meter, note = energy_meter(self.session_runtime().device_type)
        return meter is not None, note


@dataclass
class SimulatedDevice:
    """A device whose latency of an arch is a function of it (a predictor, a benchmark's table): what the referee
    lands on (NAS-Bench-201's measured tables stand for the device) and what tests run the product's loops on.

    A simulated device can drift as a real one does: ``level`` draws a factor once per session (one call of
    :meth:`measure` per load, one profiled arch) that multiplies every latency of that session, and ``noise`` a
    factor per timed model. With an anchor, its reference is timed in the same session (same level).

    Attributes:
        latency_ms: the arch's latency (ms) at level 1.
        name: what the records call it.
        options: the input the function stands for (recorded only).
        energy_mj: the arch's energy (mJ), where the simulation has one.
        anchor: the reference timed beside (an arch) and the nominal level (None: none).
        level: the session's level factor (default: 1, no drift).
        noise: one timed model's noise factor (default: 1, no noise).
    """

    latency_ms: Callable[[ArchSpec], float]
    name: str = "simulated"
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    protocol: Protocol = DEFAULT_PROTOCOL
    energy_mj: Callable[[ArchSpec], float] | None = None
    anchor: Anchor | None = None
    level: Callable[[], float] | None = None
    noise: Callable[[], float] | None = None

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        check_request(items, loads)
        if not all(isinstance(x, ArchSpec) for x in items):
            raise MeasurementError(f"the {self.name} device measures archs of a space, not modules")
        names, anchor = labels_of(items, labels), self.anchor
        reference = anchor.reference if anchor is not None else None
        if anchor is not None and not isinstance(reference, ArchSpec):
            raise MeasurementError(f"the {self.name} device times an arch as its reference, not a module")
        per_load = [self._session(items, reference) for _ in range(loads)]
        return [
            measurement_from_loads(
                names[i],
                [load[i] for load in per_load],
                self.name,
                self.options,
                anchor,
                None if self.energy_mj is None else float(self.energy_mj(x)),
            )
            for i, x in enumerate(items)
        ]

    def _session(self, items: Sequence[Measurable], reference: ArchSpec | None) -> list[LatencyStats]:
        """One session: a level factor for all, a noise factor each; the reference's level and relative values."""
        level = self.level() if self.level is not None else 1.0

        def timed(spec: ArchSpec) -> float:
            return float(self.latency_ms(spec)) * level * (self.noise() if self.noise is not None else 1.0)

        values = [timed(x) for x in items]  # type: ignore[arg-type]
        ref = timed(reference) if reference is not None else None
        return [
            LatencyStats(v, 0.0, v, v, 1, reference_ms=ref, relative=None if ref is None else v / ref) for v in values
        ]

    def profile(
        self,
        specs: Sequence[ArchSpec],
        store: MeasurementStore,
        *,
        device_name: str | None = None,
        energy: bool = False,
        interleave: int = 1,
        on_progress: ProfileProgress | None = None,
    ) -> ProfileReport:
        from edgenas.hardware.measure import profile_reference

        unique = list(dict.fromkeys(specs))
        name, key = device_name or self.name, self.key()
        device = store.device_id(name, kind="simulated", source="edgenas SimulatedDevice")
        todo = [s for s in unique if not store.has(device, s, key)]
        report = ProfileReport(name, len(unique), len(unique) - len(todo), energy_note="simulated")
        if todo:
            given = anchor_arch(self.anchor)
            ref = profile_reference(store, device, key, space_of(todo[0]), given)
            anchored, report.reference = replace(self, anchor=Anchor(ref)), str(ref)
        for spec in todo:  # one session per arch, as a real profile of interleave 1
            (row,) = anchored.measure([spec])
            session = store.add_session(device, key, str(ref), float(row.level_ms or 0.0), space_hash=ref.space_hash)
            store.add(device, spec, key, row.median_ms, session=session, relative=row.relative)
            report.measured += 1
            report.rows.append({"arch": str(spec), "median_ms": row.median_ms, "relative": row.relative})
            if on_progress is not None:
                on_progress(report.skipped + report.measured, len(unique), f"last {row.median_ms:.3f} ms")
        report.key = key
        return report

    def key(self) -> MeasurementKey:
        o = self.options
        return MeasurementKey(self.name, "latency_ms", o.batch, o.resolution, o.threads)

    def store_name(self) -> str | None:
        return self.name

    def with_options(self, options: RuntimeOptions) -> Device:
        return replace(self, options=options)

    def with_anchor(self, anchor: Anchor | None) -> Device:
        return replace(self, anchor=anchor)

    def energy_reading(self) -> tuple[bool, str]:
        return (True, "simulated") if self.energy_mj is not None else (False, "the simulation has no energy")


def energy_unavailable(device: Device) -> str | None:
    """Why ``device`` reads no energy per inference, or None where it does."""
    readable, note = device.energy_reading()
    return None if readable else note


def open_device(
    runtime: str,
    options: RuntimeOptions,
    *,
    remote: str | None = None,
    workdir: str | Path | None = None,
    protocol: Protocol = DEFAULT_PROTOCOL,
    energy: bool = False,
) -> Device:
    """The device a command or a run measures on: ``remote`` (a command template) when given, else ``runtime`` here.

    Raises:
        MeasurementError: a remote device without a work folder, or asked for energy; an unknown runtime.
    """
    if remote:
        if workdir is None:
            raise MeasurementError("a remote device needs a work folder for the models it exports")
        if energy:
            raise MeasurementError(REMOTE_LATENCY_ONLY)
        from edgenas.hardware.remote import RemoteDevice  # remote.py builds on this module

        return RemoteDevice(remote, options, Path(workdir), protocol)
    device = LocalDevice(runtime, options, protocol, energy)
    device.session_runtime()  # an unknown or missing runtime is refused now, not at the first measurement
    return device


@dataclass
class MeasurementLog:
    """The latency (ms) of one arch on ``device``, median of ``loads`` loads, at the device's nominal level where it
    times a reference beside (:attr:`Measurement.nominal_ms`): what the loops that land on a target call
    (:data:`edgenas.hardware.measure.MeasureFn`); each arch's latest :class:`Measurement` is kept in ``latest``
    (by its string), for a verdict to state its level."""

    device: Device
    loads: int = 1
    latest: dict[str, Measurement] = field(default_factory=dict)

    def __call__(self, spec: ArchSpec) -> float:
        (m,) = self.device.measure([spec], loads=self.loads)
        self.latest[str(spec)] = m
        return m.nominal_ms


def latency_fn(device: Device, loads: int = 1) -> MeasurementLog:
    """The loops' measurer on ``device`` (:class:`MeasurementLog`): an arch's latency, ms at the nominal level."""
    return MeasurementLog(device, loads)

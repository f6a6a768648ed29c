"""One device: every caller that measures (the search loops, the channel search, Domino, Comfort Zone scaling, the
pipeline and the CLI) measures through a :class:`Device` (issue 28: one device).

A device measures *models* — architectures of a registered space, or any ``nn.Module`` — round-robin in one
session, so a drift of the machine hits them alike, and returns one :class:`Measurement` each. ``loads`` separate
loads (sessions) are taken and their medians' median kept: one load's median moves by 1-4% from load to load on a
shared CPU (memory placement, neighbours). A device also profiles archs into a measurement store.

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, runtime_checkable
from typing import Protocol as TypingProtocol

import numpy as np
from torch import nn

from edgenas.errors import MeasurementError
from edgenas.hardware.energy import energy_meter, measure_energy
from edgenas.hardware.fingerprint import default_device_name, fingerprint
from edgenas.hardware.measure import ProfileReport, measure_modules, profile
from edgenas.hardware.protocol import DEFAULT_PROTOCOL, LatencyStats, Protocol
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


@dataclass(frozen=True)
class Measurement:
    """One model's latency (and energy, where counted) on a device.

    Attributes:
        label: the arch string, or the label given for a module.
        median_ms: the median over loads of each load's median latency (ms).
        iqr_ms: the median over loads of each load's interquartile range (ms).
        loads: separate loads (sessions) measured.
        runtime: the runtime's name (a remote device: the runner's, ``ort-cpu``).
        batch: batch size of the input.
        threads: intra-op threads.
        energy_mj: energy per inference (mJ), or None where no counter was read.
        flagged: some load's relative IQR stayed above the protocol's threshold (a noisy measurement).
        per_load: each load's statistics (empty for a simulated device).
    """

    label: str
    median_ms: float
    iqr_ms: float
    loads: int
    runtime: str
    batch: int
    threads: int
    energy_mj: float | None = None
    flagged: bool = False
    per_load: tuple[LatencyStats, ...] = ()

    @property
    def rel_iqr(self) -> float:
        """The interquartile range relative to the median (the noise band's width)."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, each load's statistics with its ``rel_iqr``."""
        return asdict(self) | {"per_load": [stats.as_dict() for stats in self.per_load]}


@runtime_checkable
class Device(TypingProtocol):
    """Where latency is measured. ``name`` says which (``ort-cpu``, ``remote: CMD``); ``options`` fix the input of
    everything measured (batch, resolution, threads): open a device at the resolution of the space it measures."""

    name: str
    options: RuntimeOptions
    protocol: Protocol

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
    """

    runtime: str | Runtime
    options: RuntimeOptions
    protocol: Protocol = DEFAULT_PROTOCOL
    energy: bool = False

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
        names, options = labels_of(items, labels), self.options
        runtime, models = self.session_runtime(options), modules_of(items)
        per_load = [measure_modules(models, runtime, self.protocol) for _ in range(loads)]
        energies = self._energy(models, runtime) if self.energy else [None] * len(models)
        return [
            Measurement(
                names[i],
                float(np.median([load[i].median_ms for load in per_load])),
                float(np.median([load[i].iqr_ms for load in per_load])),
                loads,
                runtime.name,
                options.batch,
                options.threads,
                energies[i],
                any(load[i].flagged for load in per_load),
                tuple(load[i] for load in per_load),
            )
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
        )
        return report

    def key(self) -> MeasurementKey:
        o = self.options
        return MeasurementKey(self.session_runtime().name, "latency_ms", o.batch, o.resolution, o.threads)

    def store_name(self) -> str | None:
        return default_device_name(fingerprint(self.session_runtime().device_type))

    def with_options(self, options: RuntimeOptions) -> Device:
        return replace(self, options=options)

    def energy_reading(self) -> tuple[bool, str]:
        if not self.energy:
            return False, "energy not requested"
        meter, note = energy_meter(self.session_runtime().device_type)
        return meter is not None, note


@dataclass
class SimulatedDevice:
    """A device whose latency of an arch is a function of it (a predictor, a benchmark's table): what the referee
    lands on (NAS-Bench-201's measured tables stand for the device) and what tests run the product's loops on.

    Attributes:
        latency_ms: the arch's latency (ms).
        name: what the records call it.
        options: the input the function stands for (recorded only).
        energy_mj: the arch's energy (mJ), where the simulation has one.
    """

    latency_ms: Callable[[ArchSpec], float]
    name: str = "simulated"
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    protocol: Protocol = DEFAULT_PROTOCOL
    energy_mj: Callable[[ArchSpec], float] | None = None

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        check_request(items, loads)
        if not all(isinstance(x, ArchSpec) for x in items):
            raise MeasurementError(f"the {self.name} device measures archs of a space, not modules")
        names = labels_of(items, labels)
        o = self.options
        return [
            Measurement(
                names[i],
                float(self.latency_ms(x)),
                0.0,
                loads,
                self.name,
                o.batch,
                o.threads,
                None if self.energy_mj is None else float(self.energy_mj(x)),
            )
            for i, x in enumerate(items)
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
        unique = list(dict.fromkeys(specs))
        name, key = device_name or self.name, self.key()
        device = store.device_id(name, kind="simulated", source="edgenas SimulatedDevice")
        todo = [s for s in unique if not store.has(device, s, key)]
        report = ProfileReport(name, len(unique), len(unique) - len(todo), energy_note="simulated")
        for spec, row in zip(todo, self.measure(todo), strict=True) if todo else ():
            store.add(device, spec, key, row.median_ms)
            report.measured += 1
            report.rows.append({"arch": str(spec), "median_ms": row.median_ms})
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


def latency_fn(device: Device, loads: int = 1) -> Callable[[ArchSpec], float]:
    """The latency (ms) of one arch on ``device``, median of ``loads`` loads: what the loops that land on a target
    call (:data:`edgenas.hardware.measure.MeasureFn`)."""
    return lambda spec: device.measure([spec], loads=loads)[0].median_ms

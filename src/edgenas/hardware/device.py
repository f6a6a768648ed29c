"""One device: every caller that measures (the search loops, the channel search, Domino, Comfort Zone scaling, the
pipeline and the CLI) measures through a :class:`Device` (issue 28: one device).

A device measures *models* — architectures of a registered space, or any ``nn.Module`` — round-robin in one
session, so a drift of the machine hits them alike, and returns one :class:`Measurement` each. ``loads`` separate
loads (sessions) are taken and their medians' median kept: one load's median moves by 1-4% from load to load on a
shared CPU (memory placement, neighbours). A device also profiles archs into a measurement store.

Two kinds:

* :class:`LocalDevice` — a runtime on this machine (``ort-cpu``, ``torch-cpu``, ``ort-cuda``, …).
* :class:`RemoteDevice` — a machine that cannot run edgenas: the models are exported to ONNX with a manifest, a
  command template (``ssh pi python runner.py {dir}``) runs the stand-alone runner there, and the results are read
  back (:mod:`edgenas.hardware.remote`). One load is one run of the command (a fresh process on the device).

:func:`open_device` picks the kind from a runtime name and an optional command template, which is what a CLI
``--remote CMD`` option and the run config's ``device.remote`` give.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, runtime_checkable
from typing import Protocol as TypingProtocol

import numpy as np
from torch import nn

from edgenas.errors import MeasurementError
from edgenas.hardware.protocol import DEFAULT_PROTOCOL, Protocol
from edgenas.hardware.runtimes import Runtime, RuntimeOptions, get_runtime
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.spaces import ArchSpec, space_of

__all__ = [
    "Device",
    "LocalDevice",
    "Measurement",
    "RemoteDevice",
    "SimulatedDevice",
    "energy_unavailable",
    "latency_fn",
    "open_device",
]

#: What a device measures: an architecture of a registered space (built here) or a module.
Measurable = ArchSpec | nn.Module
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
    """

    label: str
    median_ms: float
    iqr_ms: float
    loads: int
    runtime: str
    batch: int
    threads: int
    energy_mj: float | None = None

    @property
    def rel_iqr(self) -> float:
        """The interquartile range relative to the median (the noise band's width)."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Device(TypingProtocol):
    """Where latency is measured. ``name`` says which (``ort-cpu``, ``remote: CMD``); ``options`` fix the input
    (batch, threads, and the resolution of a module; an arch is measured at its space's resolution)."""

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
        on_progress: ProfileProgress | None = None,
    ) -> tuple[str, MeasurementKey]:
        """Measure ``specs`` (one space) into ``store`` (stored ones are skipped where the device can tell), returning
        the device's name in the store and the key of its rows."""
        ...


def _modules(items: Sequence[Measurable]) -> list[nn.Module]:
    return [space_of(x).build(x) if isinstance(x, ArchSpec) else x for x in items]


def _labels(items: Sequence[Measurable], labels: Sequence[str]) -> list[str]:
    if labels and len(labels) != len(items):
        raise MeasurementError(f"{len(labels)} labels for {len(items)} models")
    return list(labels) or [str(x) if isinstance(x, ArchSpec) else f"model {i}" for i, x in enumerate(items)]


def _check(items: Sequence[Measurable], loads: int) -> None:
    if loads < 1:
        raise MeasurementError(f"loads must be at least 1, got {loads}")
    if not items:
        raise MeasurementError("nothing to measure")


def _input_options(options: RuntimeOptions, items: Sequence[Measurable]) -> RuntimeOptions:
    """The options with the resolution of the archs measured (a space fixes it); modules keep the options'."""
    sizes = {space_of(x).resolution for x in items if isinstance(x, ArchSpec)}
    if len(sizes) > 1:
        raise MeasurementError(f"archs of several resolutions measured together: {sorted(sizes)}")
    return options if not sizes else replace(options, resolution=sizes.pop())


@dataclass
class LocalDevice:
    """A runtime on this machine.

    Attributes:
        runtime: the runtime's name (:data:`edgenas.hardware.RUNTIMES`).
        options: batch, resolution (for modules; an arch uses its space's) and threads.
        protocol: warm-up, repeats and noise handling of one load.
        energy: also read energy per inference where the device has a counter (one load, after the latency).
    """

    runtime: str
    options: RuntimeOptions
    protocol: Protocol = DEFAULT_PROTOCOL
    energy: bool = False

    @property
    def name(self) -> str:
        return self.runtime

    def session_runtime(self, options: RuntimeOptions | None = None) -> Runtime:
        """The runtime object (raises MeasurementError where it is not installed)."""
        return get_runtime(self.runtime, options or self.options)

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        from edgenas.hardware.measure import measure_modules

        _check(items, loads)
        names, options = _labels(items, labels), _input_options(self.options, items)
        runtime, models = self.session_runtime(options), _modules(items)
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
            )
            for i in range(len(models))
        ]

    @staticmethod
    def _energy(models: Sequence[nn.Module], runtime: Runtime) -> list[float | None]:
        from edgenas.hardware.energy import energy_meter, measure_energy

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
        on_progress: ProfileProgress | None = None,
    ) -> tuple[str, MeasurementKey]:
        from edgenas.hardware.measure import profile

        options = _input_options(self.options, specs)
        runtime = self.session_runtime(options)
        hook = None
        if on_progress is not None:
            hook = lambda done, total, spec, stats: on_progress(done, total, f"last {stats.median_ms:.3f} ms")  # noqa: E731
        report = profile(
            specs, runtime, store, protocol=self.protocol, device_name=device_name, energy=energy, on_progress=hook
        )
        return report.device, MeasurementKey(
            runtime.name, "latency_ms", options.batch, options.resolution, options.threads
        )


@dataclass
class RemoteDevice:
    """A device reached through a command template that runs the stand-alone runner on a folder of ONNX models.

    Attributes:
        command: the template; ``{dir}`` is the folder, ``{runner}`` the runner's path here.
        options: batch, resolution (for modules) and threads.
        workdir: where each measurement's folder is made.
        protocol: warm-up, repeats and noise handling, written into the manifest for the runner.
    """

    command: str
    options: RuntimeOptions
    workdir: Path
    protocol: Protocol = DEFAULT_PROTOCOL

    def __post_init__(self) -> None:
        if "{dir}" not in self.command:
            raise MeasurementError(f"a remote command must contain {{dir}} (where the models are): {self.command!r}")
        self.workdir = Path(self.workdir)

    @property
    def name(self) -> str:
        return f"remote: {self.command}"

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        from edgenas.hardware.remote import RUNNER_RUNTIME, export_models, run_remote

        _check(items, loads)
        names, options = _labels(items, labels), _input_options(self.options, items)
        self.workdir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="measure-", dir=self.workdir))
        export_models(list(zip(names, _modules(items), strict=True)), folder, options, self.protocol)
        runs = [run_remote(self.command, folder) for _ in range(loads)]  # one load: one fresh runner process
        return [
            Measurement(
                names[i],
                float(np.median([rows[i]["median_ms"] for rows in runs])),
                float(np.median([rows[i]["iqr_ms"] for rows in runs])),
                loads,
                RUNNER_RUNTIME,
                options.batch,
                options.threads,
            )
            for i in range(len(items))
        ]

    def profile(
        self,
        specs: Sequence[ArchSpec],
        store: MeasurementStore,
        *,
        device_name: str | None = None,
        energy: bool = False,
        on_progress: ProfileProgress | None = None,
    ) -> tuple[str, MeasurementKey]:
        """Export ``specs`` once into ``workdir/export`` (the runner resumes a folder it started), run the command,
        file the results in ``store``. ``energy`` is refused: the runner reads no energy counter."""
        from edgenas.hardware.remote import export_archs, import_results, read_results, run_remote

        if energy:
            raise MeasurementError("a remote device measures latency only (the runner reads no energy counter)")
        folder = self.workdir / "export"
        if not (folder / "manifest.json").is_file():
            export_archs(specs, folder, _input_options(self.options, specs), self.protocol)
        if on_progress is not None:
            on_progress(0, len(specs), f"running: {self.command}")
        run_remote(self.command, folder)
        results = read_results(folder)
        device, _ = import_results(store, results, device_name)
        if on_progress is not None:
            on_progress(len(specs), len(specs), "imported")
        return device, results.key


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
        _check(items, loads)
        if not all(isinstance(x, ArchSpec) for x in items):
            raise MeasurementError(f"the {self.name} device measures archs of a space, not modules")
        names = _labels(items, labels)
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
        on_progress: ProfileProgress | None = None,
    ) -> tuple[str, MeasurementKey]:
        name = device_name or self.name
        key = MeasurementKey(self.name, "latency_ms", self.options.batch, space_of(specs[0]).resolution, 1)
        device = store.device_id(name, kind="simulated", source="edgenas SimulatedDevice")
        for i, (spec, row) in enumerate(zip(specs, self.measure(specs), strict=True)):
            if not store.has(device, spec, key):
                store.add(device, spec, key, row.median_ms)
            if on_progress is not None:
                on_progress(i + 1, len(specs), f"last {row.median_ms:.3f} ms")
        return name, key


def energy_unavailable(device: Device) -> str | None:
    """Why ``device`` reads no energy per inference, or None where it does."""
    if isinstance(device, SimulatedDevice):
        return None if device.energy_mj is not None else "the simulation has no energy"
    if not isinstance(device, LocalDevice):
        return "a remote device measures latency only (the runner reads no energy counter)"
    if not device.energy:
        return "the device was opened for latency only"
    from edgenas.hardware.energy import energy_meter

    meter, note = energy_meter(device.session_runtime().device_type)
    return None if meter is not None else note


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
            raise MeasurementError("a remote device measures latency only (the runner reads no energy counter)")
        return RemoteDevice(remote, options, Path(workdir), protocol)
    device = LocalDevice(runtime, options, protocol, energy)
    device.session_runtime()  # an unknown or missing runtime is refused now, not at the first measurement
    return device


def latency_fn(device: Device, loads: int = 1) -> Callable[[ArchSpec], float]:
    """The latency (ms) of one arch on ``device``, median of ``loads`` loads: what the loops that land on a target
    call (:data:`edgenas.hardware.measure.MeasureFn`)."""
    return lambda spec: device.measure([spec], loads=loads)[0].median_ms

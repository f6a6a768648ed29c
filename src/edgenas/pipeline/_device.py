"""The device a run measures on: here through a runtime, or elsewhere through a command template and the
stand-alone runner; the quiet-machine check before measuring."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from edgenas.hardware import Protocol, RuntimeOptions, get_runtime, median_latency_ms
from edgenas.hardware.protocol import measure, measure_interleaved
from edgenas.hardware.remote import RemoteMeasurer, export_models, run_remote
from edgenas.pipeline.config import RunConfig
from edgenas.spaces import ArchSpec, SearchSpace

#: Separate loads whose median is one on-device measurement of an arch (one load moves by 1-4% on a shared CPU).
LOADS = 3


def load_warning(max_load: float) -> str | None:
    """A warning when the 1-minute load average per core is above ``max_load`` (another job would inflate every
    latency measured now), else None; None also where the OS has no load average."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return None
    if load <= max_load:
        return None
    return (
        f"this machine is busy (load {load:.2f} per core, above device.max_load {max_load:g}): latencies measured now "
        "will be inflated and noisy; stop other jobs, or raise device.max_load to silence this"
    )


def runtime_options(config: RunConfig, space: SearchSpace) -> RuntimeOptions:
    return RuntimeOptions(batch=config.device.batch, resolution=space.resolution, threads=config.device.threads)


def protocol(config: RunConfig) -> Protocol:
    return Protocol(warmup=config.profile.warmup, repeats=config.profile.repeats)


def arch_measurer(config: RunConfig, space: SearchSpace, workdir: Path) -> Callable[[ArchSpec], float]:
    """Latency (ms) of one arch on the run's device: the median of :data:`LOADS` loads here, or one remote run."""
    options = runtime_options(config, space)
    if config.device.remote:
        return RemoteMeasurer(config.device.remote, options, workdir, protocol(config))
    runtime = get_runtime(config.device.runtime, options)
    return lambda spec: median_latency_ms(spec, runtime, LOADS, protocol(config))


def measure_models(
    models: Sequence[nn.Module], config: RunConfig, resolution: int, workdir: Path, labels: Sequence[str] = ()
) -> list[float]:
    """Median latency (ms) of each model on the run's device, measured round-robin in one session here (so that a
    drift of the machine hits them alike) or in one remote folder."""
    options = RuntimeOptions(batch=config.device.batch, resolution=resolution, threads=config.device.threads)
    if config.device.remote:
        workdir.mkdir(parents=True, exist_ok=True)
        named = list(zip(labels or [f"model {i}" for i in range(len(models))], models, strict=True))
        export_models(named, workdir, options, protocol(config))
        return [row["median_ms"] for row in run_remote(config.device.remote, workdir)]
    runtime = get_runtime(config.device.runtime, options)
    sessions = [runtime.load(m) for m in models]
    try:
        runs = [s.run for s in sessions]
        stats = [measure(runs[0], protocol(config))] if len(runs) == 1 else measure_interleaved(runs, protocol(config))
    finally:
        for s in sessions:
            s.close()
    return [s.median_ms for s in stats]

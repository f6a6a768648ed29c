"""The device a run measures on: here through a runtime, or elsewhere through a command template and the
stand-alone runner; the quiet-machine check before measuring."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from edgenas.hardware import MeasurementKey, MeasurementStore, Protocol, RuntimeOptions
from edgenas.hardware.device import Device, Measurement, MeasurementLog, latency_fn, open_device
from edgenas.hardware.reference import Anchor, anchor_from_level
from edgenas.pipeline.config import RunConfig
from edgenas.spaces import ArchSpec, SearchSpace, space_of

#: Seconds over which the quiet-machine check samples the CPU time of other processes.
LOAD_WINDOW_S = 1.0
#: Separate loads whose median is one on-device measurement of an arch (one load moves by 1-4% on a shared CPU).
LOADS = 3


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``: all but idle and iowait).

    Raises:
        OSError, ValueError, IndexError: ``/proc/stat`` is missing or unreadable.
    """
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def others_share(busy_s: float, own_s: float, elapsed_s: float) -> float:
    """Cores kept busy by other processes: the machine's busy CPU seconds over a window less this process's own,
    per second of the window (at least 0: the two counters tick at different granularities)."""
    return max(0.0, busy_s - own_s) / elapsed_s


def others_load(window_s: float = LOAD_WINDOW_S) -> float | None:
    """Cores kept busy by *other* processes over ``window_s`` seconds (:func:`others_share`; the load average would
    count the run's own training a moment ago). None where ``/proc/stat`` cannot be read."""
    try:
        busy0, own0, start = machine_busy_s(), own_cpu_s(), time.monotonic()
        time.sleep(window_s)
        busy1, own1, elapsed = machine_busy_s(), own_cpu_s(), time.monotonic() - start
    except (OSError, ValueError, IndexError):
        return None
    return others_share(busy1 - busy0, own1 - own0, elapsed)


def load_warning(max_load: float) -> str | None:
    """A warning when other processes keep more than ``max_load`` cores busy per core (another job would inflate
    every latency measured now), else None; None also where the load cannot be read."""
    load = others_load()
    if load is None:
        return None
    per_core = load / (os.cpu_count() or 1)
    if per_core <= max_load:
        return None
    return (
        f"this machine is busy (other processes use {per_core:.2f} of each core, above device.max_load {max_load:g}): "
        "latencies measured now will be inflated and noisy; stop other jobs, or raise device.max_load to silence this"
    )


def runtime_options(config: RunConfig, space: SearchSpace) -> RuntimeOptions:
    return RuntimeOptions(batch=config.device.batch, resolution=space.resolution, threads=config.device.threads)


def protocol(config: RunConfig) -> Protocol:
    return Protocol(warmup=config.profile.warmup, repeats=config.profile.repeats)


def run_device(
    config: RunConfig, resolution: int, workdir: Path, *, energy: bool = False, anchor: Anchor | None = None
) -> Device:
    """The run's device (:func:`edgenas.hardware.device.open_device`): ``device.remote`` when set (its models
    exported under ``workdir``), else ``device.runtime`` here; batch and threads from the config, ``resolution`` for
    the modules it measures (an arch is measured at its space's); ``anchor``: the reference it times beside."""
    options = RuntimeOptions(batch=config.device.batch, resolution=resolution, threads=config.device.threads)
    device = open_device(
        config.device.runtime,
        options,
        remote=config.device.remote or None,
        workdir=workdir,
        protocol=protocol(config),
        energy=energy,
    )
    return device.with_anchor(anchor)


def device_level(db: MeasurementStore, device: str, key: MeasurementKey, space: SearchSpace) -> dict[str, Any]:
    """The profile's level record (issue 30): the reference its sessions timed, their nominal level (ms, the median
    of their levels), how many sessions, the levels' range, and how many rows have no level (measured before)."""
    reference = db.reference(device, key, space.config_hash)
    levels = [row["level_ms"] for row in db.levels(device, key) if row["reference"] == reference]
    return {
        "reference": reference,
        "nominal_ms": db.nominal_level(device, key, reference) if reference else None,
        "sessions": len(levels),
        "min_ms": min(levels, default=None),
        "max_ms": max(levels, default=None),
        "unanchored": db.unanchored(device),
    }


#: A session whose level is this far above the nominal one ran on an oversubscribed machine (time slicing): on this
#: 2-core VM with two other busy processes the level rose ~70% and ratios to the reference moved by 1-4%
#: (benchmarks/results/latency_repeatability.md), against 0.5% with one busy core (the level within 5%).
CONTENDED_LEVEL = 1.25


def contention_warning(measurement: Measurement) -> str | None:
    """A warning when ``measurement``'s session ran at a level :data:`CONTENDED_LEVEL` times the nominal one or
    more (its ratio to the reference is good to a few percent only), else None."""
    level, nominal = measurement.level_ms, measurement.nominal_level_ms
    if level is None or not nominal or level < CONTENDED_LEVEL * nominal:
        return None
    return (
        f"the device measured {level / nominal - 1:+.0%} slower than its nominal level (another job competes for its "
        "cores): a verdict read at the nominal level is good to a few percent then; measure again on a quieter machine"
    )


def run_anchor(level: dict[str, Any] | None, space: SearchSpace, resolution: int | None = None) -> Anchor | None:
    """The anchor of the run's measurements from the profile's level record (:func:`device_level`): the reference
    arch at the nominal level; at another ``resolution`` than the space's, the reference without a nominal level
    (the store's level is that of the space's input). None where the profile timed no reference (an older run)."""
    return anchor_from_level(level, space, nominal=resolution is None or resolution == space.resolution)


def arch_measurer(config: RunConfig, space: SearchSpace, workdir: Path, anchor: Anchor | None = None) -> MeasurementLog:
    """Latency of one arch on the run's device: the median of :data:`LOADS` loads (a remote device: runs), in ms at
    the nominal level where ``anchor`` gives one (:attr:`edgenas.hardware.device.Measurement.nominal_ms`)."""
    return latency_fn(run_device(config, space.resolution, workdir, anchor=anchor), LOADS)


def measure_models(
    models: Sequence[nn.Module],
    config: RunConfig,
    resolution: int,
    workdir: Path,
    labels: Sequence[str] = (),
    anchor: Anchor | None = None,
) -> list[Measurement]:
    """Each model on the run's device, measured round-robin in one session (so that a drift of the machine hits
    them alike), beside ``anchor``'s reference where one is given (read ``nominal_ms``)."""
    return run_device(config, resolution, workdir, anchor=anchor).measure(models, labels=labels)


def profile_on_device(
    config: RunConfig,
    specs: Sequence[ArchSpec],
    db: MeasurementStore,
    workdir: Path,
    on_progress: Callable[[int, int, str], None],
    *,
    energy: bool = False,
) -> tuple[str, MeasurementKey]:
    """Measure ``specs`` (one space) into ``db`` on the run's device (archs already stored are skipped here; a
    remote device's export in ``workdir/export`` is made once and its runner resumes; ``energy``: also energy where
    a counter exists). Returns the device's name in the store and the key of its rows."""
    device = run_device(config, space_of(specs[0]).resolution, workdir)
    report = device.profile(specs, db, device_name=config.device.name or None, energy=energy, on_progress=on_progress)
    return report.device, report.key

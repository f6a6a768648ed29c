"""Energy per inference from hardware counters: NVIDIA GPUs through NVML, Intel CPUs through RAPL.

Never estimated: when no counter is readable the measurement has no energy value and :func:`energy_meter` says why.
Counters are cumulative and coarse (NVML updates roughly every 10-100 ms, RAPL every ~1 ms), so a measurement runs the
network repeatedly for at least ``min_seconds`` between two reads and divides.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from edgenas.hardware.protocol import Runner

RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter(ABC):
    """A cumulative energy counter."""

    name: str = ""

    @abstractmethod
    def read_mj(self) -> float:
        """The counter in millijoules (cumulative, wraps handled by the meter)."""


class NvmlMeter(EnergyMeter):
    """NVML's total-energy counter of one GPU (Volta and newer), in mJ."""

    name = "nvml"

    def __init__(self, index: int = 0) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.read_mj()  # raises on GPUs without the counter

    def read_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))


class RaplMeter(EnergyMeter):
    """Intel RAPL package-domain counter (``energy_uj``) under /sys/class/powercap, with wrap-around handling."""

    name = "rapl"

    def __init__(self, domain: Path) -> None:
        self.file = domain / "energy_uj"
        self.range_uj = int((domain / "max_energy_range_uj").read_text())
        self.last = int(self.file.read_text())
        self.total_uj = 0

    def read_mj(self) -> float:
        now = int(self.file.read_text())
        delta = now - self.last if now >= self.last else now + self.range_uj - self.last
        self.total_uj += delta
        self.last = now
        return self.total_uj / 1e3


def energy_meter(device_type: str, gpu_index: int = 0, rapl_root: Path = RAPL_ROOT) -> tuple[EnergyMeter | None, str]:
    """The energy counter for ``device_type`` (``cpu`` or ``cuda``) and a sentence saying what it is or why none is.

    Returns:
        ``(meter, reason)``: ``meter`` is None when no counter is readable.
    """
    if device_type == "cuda":
        try:
            return NvmlMeter(gpu_index), "NVML total-energy counter"
        except ImportError:
            return None, "pynvml is not installed (pip install nvidia-ml-py)"
        except Exception as exc:  # NVMLError subclasses: no driver, counter unsupported ...
            return None, f"NVML energy counter not readable: {exc}"
    domains = sorted(rapl_root.glob("intel-rapl:[0-9]")) if rapl_root.is_dir() else []
    if not domains:
        return None, f"no RAPL domain under {rapl_root} (not an Intel CPU, or a VM without power capping)"
    try:
        return RaplMeter(domains[0]), f"RAPL package counter {domains[0].name}"
    except (OSError, ValueError) as exc:
        return None, f"RAPL counter {domains[0] / 'energy_uj'} not readable: {getattr(exc, 'strerror', None) or exc}"


@dataclass(frozen=True)
class EnergyStats:
    """Energy per inference (mJ) from ``runs`` runs over ``seconds`` of wall time."""

    mj_per_run: float
    runs: int
    seconds: float


def measure_energy(run: Runner, meter: EnergyMeter, min_seconds: float = 1.0, min_runs: int = 10) -> EnergyStats:
    """Run ``run`` at least ``min_runs`` times and for at least ``min_seconds``; energy per run from the counter."""
    start_mj, start = meter.read_mj(), time.perf_counter()
    runs = 0
    while runs < min_runs or time.perf_counter() - start < min_seconds:
        run()
        runs += 1
    elapsed = time.perf_counter() - start
    return EnergyStats((meter.read_mj() - start_mj) / runs, runs, elapsed)

"""Latency and energy on real runtimes: runtimes, the measurement protocol, devices, the store, monotonicity."""

from edgenas.hardware.device import Device, LocalDevice, Measurement, SimulatedDevice, open_device
from edgenas.hardware.energy import energy_meter, measure_energy
from edgenas.hardware.fingerprint import default_device_name, device_key, fingerprint
from edgenas.hardware.measure import ArchMeasurement, ProfileReport, measure_arch, median_latency_ms, profile
from edgenas.hardware.monotonic import Monotonicity, compare_devices, group_devices, monotonicity
from edgenas.hardware.protocol import DEFAULT_PROTOCOL, LatencyStats, Protocol, measure, measure_interleaved
from edgenas.hardware.remote import RemoteDevice
from edgenas.hardware.runtimes import RUNTIMES, Runtime, RuntimeOptions, available_runtimes, get_runtime
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.hardware.store_import import PRESETS, ImportColumn, import_table

__all__ = [
    "DEFAULT_PROTOCOL",
    "PRESETS",
    "RUNTIMES",
    "ArchMeasurement",
    "Device",
    "ImportColumn",
    "LatencyStats",
    "LocalDevice",
    "Measurement",
    "MeasurementKey",
    "MeasurementStore",
    "Monotonicity",
    "ProfileReport",
    "Protocol",
    "RemoteDevice",
    "Runtime",
    "RuntimeOptions",
    "SimulatedDevice",
    "available_runtimes",
    "compare_devices",
    "default_device_name",
    "device_key",
    "energy_meter",
    "fingerprint",
    "get_runtime",
    "group_devices",
    "import_table",
    "measure",
    "measure_arch",
    "measure_energy",
    "measure_interleaved",
    "median_latency_ms",
    "monotonicity",
    "open_device",
    "profile",
]

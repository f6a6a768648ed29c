"""One model's measurement on a device (:class:`Measurement`) and how it is made from each load's statistics, with
the level and relative value where a reference was timed beside it (issue 30)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgenas.hardware.protocol import LatencyStats
from edgenas.hardware.reference import Anchor
from edgenas.hardware.runtimes import RuntimeOptions
from edgenas.spaces import ArchSpec

__all__ = ["Measurement", "anchor_arch", "measurement_from_loads"]


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
        per_load: each load's statistics (a simulated device: one value per load, its IQR 0).
        level_ms: measured beside a reference: the reference's latency in the same sessions (ms, median over loads;
            the device's level now), else None.
        relative: measured beside a reference: the latency over the reference's, round by round (median over
            rounds, then over loads), else None.
        nominal_level_ms: the anchor's nominal level (ms), where one was given.
        reference: what the reference was (an arch string or a module's label), else None.
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
    level_ms: float | None = None
    relative: float | None = None
    nominal_level_ms: float | None = None
    reference: str | None = None

    @property
    def rel_iqr(self) -> float:
        """The interquartile range relative to the median (the noise band's width)."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    @property
    def nominal_ms(self) -> float:
        """The latency at the nominal level (ms): relative value x nominal level; without a nominal level, relative
        value x this session's level; without a reference, the milliseconds measured."""
        if self.relative is None:
            return self.median_ms
        level = self.nominal_level_ms if self.nominal_level_ms is not None else self.level_ms
        return self.median_ms if level is None else self.relative * level

    def levels(self) -> dict[str, float | None]:
        """What a verdict on this measurement states (issue 30): ``ms_now`` (measured), ``level_now_ms`` (the
        reference's latency beside it), ``nominal_level_ms`` and ``nominal_ms`` (the latency at the nominal level)."""
        return {
            "ms_now": self.median_ms,
            "level_now_ms": self.level_ms,
            "nominal_level_ms": self.nominal_level_ms,
            "nominal_ms": self.nominal_ms,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, ``nominal_ms``, each load's statistics with its ``rel_iqr``."""
        return asdict(self) | {
            "nominal_ms": self.nominal_ms,
            "per_load": [stats.as_dict() for stats in self.per_load],
        }


def anchor_arch(anchor: Anchor | None) -> ArchSpec | None:
    """The anchor's reference where it is an arch (what a profile can time beside its chunks), else None."""
    return anchor.reference if anchor is not None and isinstance(anchor.reference, ArchSpec) else None


def measurement_from_loads(
    label: str,
    per_load: Sequence[LatencyStats],
    runtime: str,
    options: RuntimeOptions,
    anchor: Anchor | None,
    energy_mj: float | None = None,
) -> Measurement:
    """One model's :class:`Measurement` from its statistics in each load (medians over loads; the level and the
    relative value where the loads timed the anchor's reference beside it)."""
    anchored = anchor is not None and all(s.relative is not None for s in per_load)

    def median(values: Sequence[float | None]) -> float:
        return float(np.median([v for v in values if v is not None]))

    return Measurement(
        label,
        median([s.median_ms for s in per_load]),
        median([s.iqr_ms for s in per_load]),
        len(per_load),
        runtime,
        options.batch,
        options.threads,
        energy_mj,
        any(s.flagged for s in per_load),
        tuple(per_load),
        median([s.reference_ms for s in per_load]) if anchored else None,
        median([s.relative for s in per_load]) if anchored else None,
        anchor.nominal_ms if anchor is not None else None,
        anchor.name if anchor is not None else None,
    )

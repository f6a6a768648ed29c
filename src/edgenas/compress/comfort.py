"""Comfort Zone (thesis Sec 3.3.6, Eq 3.18-3.20, Fig 3.10-3.11): widen a network while its latency stays flat.

Widening every layer by phi raises the arithmetic intensity (FLOPs per memory access, Eq 3.20). On hardware that
is under-utilised at the base width (GPUs at batch 1) the extra FLOPs fill idle units and the latency does not move:
that range of phi is the Comfort Zone. We measure latency and intensity at each scale and report the largest scale
(going up from 1 without a break) whose latency stays within the noise band of the base latency:
``band = max(tolerance, 2 * relative IQR of the base measurement)``. The thesis expects a zone on GPUs and none on
CPUs; whatever is measured is reported.

:func:`scale_up` applies it to a found network (``edgenas scale``): one width step at a time, each measured against
the original, keeping the widest network still in the band and stopping at the first step out of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenas._io import atomic_output
from edgenas.errors import MeasurementError
from edgenas.hardware.device import Device
from edgenas.nn.costs import count_mult_adds, measure_costs
from edgenas.spaces import ArchSpec, space_of


@dataclass
class ComfortReport:
    """Latency and intensity per width scale, and the zone found.

    Attributes:
        arch: the architecture (human form).
        runtime: runtime name.
        rows: per scale: ``scale``, ``median_ms``, ``iqr_ms``, ``flagged``, ``mult_adds_M``, ``memory_accesses_M``,
            ``intensity``, ``within_band``.
        band: relative latency band counted as noise.
        zone_scale: the largest scale of the zone (1.0 = no zone).
    """

    arch: str
    runtime: str
    band: float
    zone_scale: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_zone(self) -> bool:
        """True when some scale above 1 keeps the base latency."""
        return self.zone_scale > 1.0


def parse_scales(text: str) -> list[float]:
    """``"1:3:0.25"`` (start:stop:step, stop included) or ``"1,1.5,2"`` -> a sorted list starting at 1.

    Raises:
        MeasurementError: malformed text, non-positive values, or a list without 1.
    """
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            scales = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            scales = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise MeasurementError(f"--scales {text!r}: use start:stop:step (e.g. 1:3:0.25) or a list (1,1.5,2)") from exc
    if not scales or min(scales) <= 0 or 1.0 not in scales:
        raise MeasurementError(f"--scales {text!r} must be positive and include 1 (the base width)")
    return scales


def comfort_zone(spec: ArchSpec, device: Device, scales: list[float], *, tolerance: float = 0.03) -> ComfortReport:
    """Measure ``spec`` at each width scale on ``device`` (round-robin, so drift hits all scales alike) and find the
    zone.

    Raises:
        SpaceConfigError: the space has no width option.
    """
    specs = [widened(spec, scale) for scale in scales]
    size = space_of(spec).resolution
    costs = [measure_costs(space_of(s).build(s), (device.options.batch, 3, size, size)) for s in specs]
    stats = device.measure(specs)
    text = str(spec)
    base = stats[scales.index(1.0)]
    band = max(tolerance, 2 * base.rel_iqr)
    report = ComfortReport(text, device.name, band, 1.0)
    in_zone = True
    for scale, st, c in sorted(zip(scales, stats, costs, strict=True), key=lambda t: t[0]):
        within = st.median_ms <= base.median_ms * (1 + band)
        if scale > 1.0:
            in_zone = in_zone and within
            if in_zone:
                report.zone_scale = scale
        report.rows.append(
            {
                "scale": scale,
                "median_ms": st.median_ms,
                "iqr_ms": st.iqr_ms,
                "flagged": st.flagged,
                "latency_ratio": st.median_ms / base.median_ms,
                "mult_adds_M": c.mult_adds / 1e6,
                "memory_accesses_M": c.memory_accesses / 1e6,
                "intensity": c.intensity,
                "within_band": within,
            }
        )
    return report


def plot_comfort(report: ComfortReport, path: str | os.PathLike[str]) -> Path:
    """Latency ratio and arithmetic intensity vs width scale (thesis Fig 3.10-3.11 style), written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scales = [r["scale"] for r in report.rows]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)  # an explicit backend for this figure: no global matplotlib state
    ax1, ax2 = fig.subplots(1, 2)
    ax1.errorbar(
        scales,
        [r["median_ms"] for r in report.rows],
        yerr=[r["iqr_ms"] / 2 for r in report.rows],
        marker="o",
        capsize=3,
    )
    base = next(r["median_ms"] for r in report.rows if r["scale"] == 1.0)
    ax1.axhspan(base, base * (1 + report.band), color="tab:green", alpha=0.15, label=f"noise band (+{report.band:.0%})")
    if report.has_zone:
        ax1.axvspan(
            1.0, report.zone_scale, color="tab:orange", alpha=0.15, label=f"Comfort Zone (to x{report.zone_scale})"
        )
    ax1.set_xlabel("width scale")
    ax1.set_ylabel(f"latency (ms, {report.runtime})")
    ax1.set_title("latency vs width")
    ax1.legend()
    ax2.plot(scales, [r["intensity"] for r in report.rows], marker="s", color="tab:red")
    ax2.set_xlabel("width scale")
    ax2.set_ylabel("arithmetic intensity (mult-adds / memory access)")
    ax2.set_title("intensity vs width (Eq 3.20)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    if not Path(path).is_file():
        raise MeasurementError(f"could not write {path}")
    return Path(path)


#: Width step and largest scale of :func:`scale_up` (thesis Sec 3.3.6 raises phi "gradually"; its GPUs kept ~3).
SCALE_STEP = 0.25
MAX_SCALE = 3.0


@dataclass
class ScaleReport:
    """Comfort Zone scaling of one network (:func:`scale_up`).

    Attributes:
        original / kept: the architecture given and the widest one kept (the original when no wider one is in band).
        band: relative latency band counted as noise (at the last step).
        scale: width scale of the kept network (1.0: no Comfort Zone on this runtime).
        steps: per width tried: ``scale``, ``median_ms``, ``base_ms`` (the original, measured with it), ``ratio``,
            ``mult_adds_M``, ``within_band``.
    """

    original: ArchSpec
    kept: ArchSpec
    band: float
    scale: float = 1.0
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_zone(self) -> bool:
        """True when a wider network kept the original's latency (scale > 1)."""
        return self.scale > 1.0


def widened(spec: ArchSpec, scale: float) -> ArchSpec:
    """``spec`` in its space widened by ``scale`` (the same choices; the space's ``width``/``channels`` option).

    Raises:
        SpaceConfigError: the space has no width option.
    """
    space = space_of(spec).scale_width(scale)
    return space.parse(str(spec))


def scale_up(
    spec: ArchSpec,
    device: Device,
    *,
    step: float = SCALE_STEP,
    max_scale: float = MAX_SCALE,
    tolerance: float = 0.03,
) -> ScaleReport:
    """Widen ``spec`` by ``step`` at a time and keep the widest network whose measured latency stays within the noise
    band of the original's (thesis Sec 3.3.6: "gradually increase the scaling factor until the runtime latency
    increases"). Each step measures the original and the candidate together on ``device`` (round-robin, so drift
    hits both alike); the band is ``max(tolerance, 2 * relative IQR of the original)`` at that step. The
    first step out of the band ends the scaling.

    Raises:
        SpaceConfigError: the space has no width option; MeasurementError: a step or largest scale that is not > 0
            and > 1.
    """
    if step <= 0 or max_scale <= 1:
        raise MeasurementError(f"scaling needs a step > 0 and a largest scale > 1 (got {step}, {max_scale})")
    report = ScaleReport(spec, spec, tolerance)
    scale = 1.0
    while scale + step <= max_scale + 1e-9:
        scale = round(scale + step, 6)
        candidate = widened(spec, scale)
        base, wide = device.measure([spec, candidate])
        band = max(tolerance, 2 * base.rel_iqr)
        within = wide.median_ms <= base.median_ms * (1 + band)
        report.band = band
        report.steps.append(
            {
                "scale": scale,
                "median_ms": wide.median_ms,
                "base_ms": base.median_ms,
                "ratio": wide.median_ms / base.median_ms,
                "mult_adds_M": _mult_adds(candidate) / 1e6,
                "within_band": within,
            }
        )
        if not within:
            break
        report.kept, report.scale = candidate, scale
    return report


def _mult_adds(spec: ArchSpec) -> float:
    space = space_of(spec)
    return count_mult_adds(space.build(spec), space.input_shape())

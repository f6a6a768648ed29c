"""Domino's latency in the unit of one session (issue 31 §3): the ungrafted network as the yardstick.

A CPU's millisecond level moves by tens of percent within minutes (``benchmarks/results/latency_repeatability.md``),
while the ratio of two networks timed round-robin in one session holds to a few percent. So a Domino run:

1. **calibrates** before its search: the ungrafted network (every block kept), the all-grafted one and a few masks
   spread over the predicted range are timed beside the ungrafted network (:func:`calibrate_masks`); the ungrafted
   network's latency in that session is the **level** T is read at, and the mask predictor is rescaled by the median
   measured / predicted ratio of those masks (one number: the ranking learned from hundreds of masks is kept);
2. reads a target in ms at that level, or as a share of the ungrafted network (``target_ratio``);
3. lands the searched mask with every measurement taken beside the ungrafted network (the closed loop corrects
   with the closest measured masks), converted to the calibration's level by the ratio of that session;
4. judges the shipped network by its ratio to the ungrafted one in one session (:func:`deployed_ratio`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgenas.errors import DominoError
from edgenas.hardware.reference import Anchor
from edgenas.predictors.base import CachedPredictor
from edgenas.search.calibrate import scale_predictor
from edgenas.spaces import ArchSpec
from edgenas.spaces.domino import MaskSpace

UNGRAFTED = "ungrafted"
#: Masks sampled to find the spread ones among (their predicted latencies' quantiles are picked).
SPREAD_POOL = 256
#: Seed of that pool (fixed: a resumed or repeated run calibrates on the same masks).
SPREAD_SEED = 31


@dataclass(frozen=True)
class SessionCalibration:
    """One calibration session's outcome.

    Attributes:
        level_ms: the ungrafted network's latency in the unit targets are read in (ms): its latency in the
            calibration session, or at the device's nominal level where the device was given an anchor with one
            (``edgenas run``: the run's reference at the profile's nominal level).
        factor: measured / predicted, the median over the calibration masks (the predictor's rescaling).
        masks: per calibration mask: ``mask``, ``predicted_ms`` (the predictor as fitted), ``ratio`` (measured
            latency over the ungrafted network's, round by round), ``measured_ms`` (ratio x level) and
            ``calibrated_ms`` (predicted x factor).
        session_ms: the ungrafted network's latency in the calibration session (ms now).
    """

    level_ms: float
    factor: float
    masks: tuple[dict[str, Any], ...]
    session_ms: float = 0.0

    def anchor(self, space: MaskSpace) -> Anchor:
        """The ungrafted network as the reference, at this session's level: a measurement beside it reads as
        its ratio x :attr:`level_ms`."""
        return Anchor(space.keep_all(), self.level_ms, UNGRAFTED)

    def target_ms(self, target_ms: float, target_ratio: float) -> float:
        """T in ms at this level: ``target_ms`` as given (read at this level), else ``target_ratio`` x the level."""
        return target_ms if target_ms > 0 else target_ratio * self.level_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"masks": list(self.masks)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SessionCalibration:
        return cls(
            float(record["level_ms"]), float(record["factor"]), tuple(record["masks"]), float(record["session_ms"])
        )


def spread_masks(space: MaskSpace, latency: CachedPredictor, n: int) -> list[ArchSpec]:
    """The ungrafted and the all-grafted mask, then ``n`` masks at evenly spaced quantiles of the predicted latency
    of :data:`SPREAD_POOL` random masks (distinct, the two ends excluded)."""
    ends = [space.keep_all(), space.graft_all()]
    if n <= 0:
        return ends
    pool = [s for s in space.sample(seed=SPREAD_SEED, n=SPREAD_POOL) if s not in ends]
    order = np.argsort(latency(pool), kind="stable")
    picks = np.unique(np.linspace(0, len(pool) - 1, n + 2)[1:-1].round().astype(int))
    return ends + [pool[order[i]] for i in picks]


def calibrate_masks(
    space: MaskSpace, latency: CachedPredictor, device: Any, *, spread: int = 4, loads: int = 3
) -> SessionCalibration:
    """Time the calibration masks (:func:`spread_masks`) beside the ungrafted network, ``loads`` sessions, and
    rescale the predictor to them (see the module docstring).

    Raises:
        DominoError: the device gave no ratio (it timed no reference).
    """
    masks = spread_masks(space, latency, spread)
    anchored = device.with_anchor(Anchor(space.keep_all(), None, UNGRAFTED))
    rows = anchored.measure(masks[1:], loads=loads, labels=[space.format(m) for m in masks[1:]])
    if any(r.relative is None or r.level_ms is None for r in rows):
        raise DominoError(f"{device.name} timed no reference beside the masks: no ratio to calibrate on")
    session = float(np.median([r.level_ms for r in rows]))
    level = _target_level(space, device, loads) or session
    ratios = [1.0] + [float(r.relative) for r in rows]
    predicted = latency(masks)
    factor = float(np.median([q * level / p for q, p in zip(ratios, predicted, strict=True)]))
    records = tuple(
        {
            "mask": space.format(m),
            "predicted_ms": p,
            "ratio": q,
            "measured_ms": q * level,
            "calibrated_ms": p * factor,
        }
        for m, p, q in zip(masks, predicted, ratios, strict=True)
    )
    return SessionCalibration(level, factor, records, session)


def _target_level(space: MaskSpace, device: Any, loads: int) -> float | None:
    """The ungrafted network's latency at the nominal level of the device's own anchor (None without one)."""
    anchor = device.anchor
    if anchor is None or anchor.nominal_ms is None:
        return None
    (row,) = device.measure([space.keep_all()], loads=loads, labels=[UNGRAFTED])
    return row.nominal_ms


def calibrated(latency: CachedPredictor, space: MaskSpace, factor: float) -> CachedPredictor:
    """The mask predictor rescaled by ``factor`` (ms at the calibration's level)."""
    from edgenas.compress.domino import predicted_latency

    return predicted_latency(scale_predictor(latency.predictor, factor), space)


def deployed_ratio(device: Any, ungrafted: Any, collapsed: Any, level_ms: float, loads: int) -> dict[str, Any]:
    """The shipped (collapsed) network timed beside the ungrafted one, ``loads`` sessions: its ratio, the speed-up,
    its ms now and the ungrafted network's, and its ms at the calibration's level (ratio x ``level_ms``)."""
    anchor = Anchor(ungrafted, level_ms, UNGRAFTED)
    (row,) = device.with_anchor(anchor).measure([collapsed], loads=loads, labels=["collapsed"])
    if row.relative is None:
        raise DominoError(f"{device.name} timed no reference beside the collapsed network")
    return {
        "ratio": row.relative,
        "speedup": 1.0 / row.relative,
        "measured_ms_now": row.median_ms,
        "ungrafted_ms_now": row.level_ms,
        "measured_ms": row.nominal_ms,
    }

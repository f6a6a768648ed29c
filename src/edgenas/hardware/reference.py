"""The reference network of a space: what a device times beside every measurement (issue 30).

A millisecond measured now is a different unit from one measured an hour ago on a shared CPU or a throttling edge
device; the ratio of a network's latency to a fixed reference timed round-robin with it in the same session cancels
the device's level. The reference of a space is its **median arch by multiply-adds** among a fixed sample of it: a
network of the space's typical size (a ratio near 1 is the most precise), chosen without measuring anything, the
same on every machine. A store keeps the reference of each device's sessions, so a device's reference stays fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgenas.nn.costs import count_mult_adds
from edgenas.spaces import ArchSpec, SearchSpace

__all__ = [
    "REFERENCE_POOL",
    "REFERENCE_SEED",
    "Anchor",
    "anchor_from_level",
    "reference_arch",
    "reference_label",
]

#: Seed of the sample the reference is drawn from (fixed: the reference must not change between releases).
REFERENCE_SEED = 30
#: Archs sampled; the reference is the one of median multiply-adds among them.
REFERENCE_POOL = 9

_CHOSEN: dict[tuple[str, str], ArchSpec] = {}


def reference_arch(space: SearchSpace) -> ArchSpec:
    """The space's reference arch: the median by multiply-adds (at the space's resolution) of
    :data:`REFERENCE_POOL` archs sampled with :data:`REFERENCE_SEED` (cached per space configuration)."""
    key = (space.name, space.config_hash)
    if key not in _CHOSEN:
        pool = [s for s in space.sample(seed=REFERENCE_SEED, n=REFERENCE_POOL) if space.is_valid_network(s)]
        pool = pool or space.sample(seed=REFERENCE_SEED, n=1)
        costs = [count_mult_adds(space.build(s), space.input_shape()) for s in pool]
        _CHOSEN[key] = pool[int(np.argsort(costs, kind="stable")[len(pool) // 2])]
    return _CHOSEN[key]


def reference_label(reference: Any) -> str:
    """What a store and a record call a reference: an arch's string, else the module's class name."""
    return str(reference) if isinstance(reference, ArchSpec) else f"module {type(reference).__name__}"


@dataclass(frozen=True)
class Anchor:
    """What a device times beside everything it measures, and the level its milliseconds are read at.

    Attributes:
        reference: an arch (built by its space) or a module (the ungrafted net a Domino mask is judged against).
        nominal_ms: the reference's latency at the **nominal level** (ms): a measurement's relative value times this
            is its latency in nominal-level milliseconds, the unit a target is read in (a store's nominal level:
            :meth:`edgenas.hardware.store.MeasurementStore.nominal_level`). None: read at each session's own level
            (the milliseconds of the moment, still with the level recorded).
        label: what records call the reference (default: :func:`reference_label`).
    """

    reference: Any
    nominal_ms: float | None = None
    label: str = ""

    @property
    def name(self) -> str:
        """The label given, else :func:`reference_label` of the reference."""
        return self.label or reference_label(self.reference)


def anchor_from_level(level: dict[str, Any] | None, space: SearchSpace, nominal: bool = True) -> Anchor | None:
    """The anchor of a level record (``reference``: an arch string of ``space``, ``nominal_ms``) — a run's profile
    stage writes one, a predictor keeps the one it was fitted at (``meta.level``); ``nominal=False``: the reference
    without its nominal level. None where the record names no reference, or one of another space."""
    from edgenas.errors import EdgeNASError

    if not level or not level.get("reference"):
        return None
    try:
        reference = space.parse(level["reference"])
    except EdgeNASError:  # an arch of another space: its level is not this space's
        return None
    return Anchor(reference, level.get("nominal_ms") if nominal else None)

"""LightNAS (thesis Ch 4): one single-path search whose learned multiplier makes the derived architecture meet a
latency (and/or energy) target.

The strategy is the engine's default behaviour (:class:`~edgenas.search.strategy.Strategy`): one hard
straight-through Gumbel path per pass, ``lambda_0 = 0`` learned by ascent (Eq 4.11, ``eq`` or ``le``), the
architecture loss ``CE + sum_t lambda_t (PRED_t / T_t - 1)``. The engine's public names are re-exported here, where
the first wave's callers import them from.
"""

from __future__ import annotations

from edgenas.search.engine import (
    SearchConfig,
    SearchResult,
    Target,
    prepare_targets,
    search,
    update_summary,
)
from edgenas.search.record import read_trajectory
from edgenas.search.refine import refine
from edgenas.search.strategy import Strategy, architecture_step, register_strategy

__all__ = [
    "LightNAS",
    "SearchConfig",
    "SearchResult",
    "Target",
    "architecture_step",
    "prepare_targets",
    "read_trajectory",
    "refine",
    "search",
    "update_summary",
]


class LightNAS(Strategy):
    """Single path, learned multiplier (the defaults of :class:`Strategy`)."""

    name = "lightnas"
    single_path = True


register_strategy(LightNAS())

"""The FBNet baseline (Wu et al., CVPR 2019) on LightNAS' loop, so the two compare on the same data, predictor and
budget.

What differs from LightNAS, and only that: every layer mixes *all* its candidate ops, weighted by the Gumbel-softmax
of alpha (multi-path, :meth:`~edgenas.search.supernet.Supernet.sample_multi_path`), and the trade-off lambda is
fixed by hand. The latency term is LightNAS' ``lambda * (LAT / T - 1)`` rather than FBNet's ``alpha * log(LAT) **
beta`` so that the comparison isolates the learned multiplier: reaching a target with a fixed trade-off takes a
sweep of lambda (``benchmarks/lightnas.py fbnet`` counts the searches), one LightNAS search does not.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgenas.search.strategy import Strategy, register_strategy
from edgenas.spaces import SearchSpace
from edgenas.train.data import ImageData

if TYPE_CHECKING:
    from edgenas.search.engine import SearchConfig, SearchResult, Target


class FBNet(Strategy):
    """Every op mixed by its soft Gumbel weight; the multiplier fixed at ``config.lambda_init``."""

    name = "fbnet"
    single_path = False

    def constraint(self, config: SearchConfig) -> str:
        return "fixed"

    def lambda_init(self, config: SearchConfig) -> float:
        return config.lambda_init


register_strategy(FBNet())


def fbnet_config(config: SearchConfig, lambda_: float) -> SearchConfig:
    """``config`` turned into an FBNet search with the fixed trade-off ``lambda_`` (unit-free)."""
    return replace(config, method="fbnet", lambda_init=float(lambda_))


def search_fbnet(
    space: SearchSpace,
    target: Target,
    data: ImageData,
    lambda_: float,
    config: SearchConfig,
    run: str | Path,
    *,
    resume: bool = False,
) -> SearchResult:
    """One FBNet search with the fixed trade-off ``lambda_`` on the loss ``CE + lambda_ * (LAT / T - 1)``; the
    target T only normalises the latency (no infeasibility check: a fixed lambda does not aim at T).

    Raises:
        SearchError: see :func:`edgenas.search.engine.search`.
    """
    from edgenas.search.engine import search

    return search(space, [target], data, fbnet_config(config, lambda_), run, resume=resume)

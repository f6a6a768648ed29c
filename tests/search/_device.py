"""A simulated device for the closed-loop tests: an additive cost per op, a non-additive per-arch error of up to
±15% (interactions of adjacent layers, as operator fusion and caches make them on real runtimes) and a drift per
measurement (this shared VM's speed moves by several percent within minutes)."""

from __future__ import annotations

import math

import numpy as np
import torch

from edgenas.predictors import FitConfig, fit_predictor
from edgenas.predictors.data import ArchTable
from edgenas.search.coverage import cover_specs

#: Largest relative error of one arch that an additive model cannot explain.
NON_ADDITIVE = 0.15
#: Scale of the pairwise term inside tanh (0.7: the error has a standard deviation of about 8%)
INTERACTION = 0.7


class SimulatedDevice:
    """``value(arch) = (c + sum of per-layer op costs) * (1 + 0.15 * tanh(pairwise term))`` when profiled, times
    ``1 + offset + drift * calls`` when measured after the profile (the device has moved since, and keeps moving).

    Args:
        space: the search space.
        seed: seed of the costs and the interactions.
        offset: relative change of the device's speed since the profile (0.03: 3% slower).
        drift: relative change per measurement after the profile (0.002: +0.2% per call).
        metric: ``latency_ms`` or ``energy_mJ`` (the table's scale only).
    """

    def __init__(
        self, space, seed: int = 0, offset: float = 0.03, drift: float = 0.002, metric: str = "latency_ms"
    ) -> None:
        rng = np.random.default_rng(seed)
        self.space, self.offset, self.drift, self.metric = space, offset, drift, metric
        scale = 1.0 if metric == "latency_ms" else 3.0
        self.costs = rng.uniform(0.02, 0.4, (space.num_layers, space.num_ops)) * scale
        self.costs[:, space.op_names.index("skip")] = 0.01 * scale
        self.constant = 1.0 * scale
        self.pairs = rng.normal(0.0, 1.0, (space.num_layers - 1, space.num_ops, space.num_ops))
        self.calls = 0

    def clean(self, arch) -> float:
        """The value without drift."""
        ops = np.asarray(arch.choices)
        layers = np.arange(len(ops))
        additive = self.constant + self.costs[layers, ops].sum()
        interaction = INTERACTION * self.pairs[layers[:-1], ops[:-1], ops[1:]].sum() / math.sqrt(len(ops) - 1)
        return float(additive * (1 + NON_ADDITIVE * math.tanh(interaction)))

    def now(self, arch) -> float:
        """The value at the device's current speed, without counting a measurement."""
        return self.clean(arch) * (1 + self.offset + self.drift * self.calls)

    def __call__(self, arch) -> float:
        """Measure: the current value; the device drifts by one step."""
        value = self.now(arch)
        self.calls += 1
        return value

    def profile(self, n: int, seed: int = 0) -> ArchTable:
        """``n`` uniform random archs as profiled (no offset, no drift)."""
        specs = self.space.sample(seed=seed, n=n)
        return ArchTable(self.space, specs, np.array([self.clean(s) for s in specs]), self.metric, "simulated")

    def profile_covering(self, n: int, seed: int = 0) -> ArchTable:
        """``n`` archs as ``edgenas profile --cover`` picks them: half uniform, half spread evenly over the range of a
        LUT fitted on the first half (:func:`edgenas.search.coverage.cover_specs`)."""
        first = self.profile(n // 2, seed)
        planner = fit_predictor("lut", first, FitConfig(seed=seed))
        specs = first.specs + cover_specs(planner, self.space, n - n // 2, seed=seed, exclude=map(str, first.specs))
        return ArchTable(self.space, specs, np.array([self.clean(s) for s in specs]), self.metric, "simulated")

    def fitted_lut(self, n: int = 200, seed: int = 0, cover: bool = True):
        """A LUT fitted on a fresh ``n``-arch profile (what a user has after ``edgenas profile --n N [--cover]``)."""
        table = self.profile_covering(n, seed) if cover else self.profile(n, seed)
        return fit_predictor("lut", table, FitConfig(seed=seed))


def alpha_preferring(space, arch, seed: int = 0, margin: float = 3.0) -> torch.Tensor:
    """Architecture logits whose argmax is ``arch`` (a search's result): random logits in [-1, 1] plus ``margin`` (> 2)
    on its ops."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.randn(space.num_layers, space.num_ops, generator=g).clamp(-2, 2) * 0.5
    alpha[torch.arange(space.num_layers), torch.tensor(arch.choices)] += margin
    return alpha

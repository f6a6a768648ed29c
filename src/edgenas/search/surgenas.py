"""SurgeNAS (thesis Ch 3): one-level differentiable search with ordered fair sampling and identity mapping.

What differs from the engine's default (LightNAS), and only that:

- **One level** (Eq 3.4-3.5): after the warm-up, every weight step also steps alpha (Adam) with the gradient of the
  same training batch; no images are held out and there is no architecture phase (:attr:`SurgeNAS.one_level`).
- **Ordered differentiable sampling** (Alg. 1, Eq 3.7-3.12): each weight step draws ``|O|`` hard straight-through
  Gumbel paths without replacement per layer
  (:meth:`~edgenas.search.supernet.Supernet.ordered_paths`) and runs each path's forward and backward in turn, the
  gradients of w and alpha accumulating, so every op of every layer is trained exactly once per step (strict
  fairness) while only one path's activations are alive (the single-path memory). A layer with fewer candidates
  than ``|O|`` draws a fresh unmasked sample for its extra paths, so its ops may run twice in a step
  (``METHODS.md``). ``path_sampling="independent"`` draws the ``|O|`` paths with replacement instead (the ablation).
- **Loss** (Eq 3.16): ``sum_i [CE_i + beta * LAT(P-bar_i)]`` with any predictor(s) of the targets; ``beta = 0``
  (the default, and NAS-Bench-201's setting, Sec 3.4.3.3) searches for accuracy only. A SurgeNAS target carries no
  value to reach: beta sets the trade-off, the search reports the derived arch's prediction.
- **Identity mapping** (Eq 3.6, Appendix A): every candidate's output gets ``+ phi * x`` where the layer keeps its
  input's shape, phi falling linearly from ``identity_phi`` (thesis: 2) to 0 at the last weight step, so the
  supernet ends as the plain one and the derived network (built by the space, not the supernet) never has it.
  *Outside a layer-wise chain* (METHODS.md, "Identity mapping (Eq 3.6) outside a layer-wise chain"): on
  NAS-Bench-201 cells the searchable block is the cell, and φ·x is added once per cell
  (``identity_scope="block"``, the ``nb201`` space's default, as the LightNAS authors' code adds η·x once per
  searchable block); per edge (``"layer"``) it makes ``none`` act as a skip while searching and compounds through
  the cell (the former loop found the all-``none`` cell on every seed). Measured per cell on the referee
  (``benchmarks/results/nb201_parity.md``, NNI's loop, 5k images, 8 epochs, 5 seeds): 90.89 ± 1.92 by the
  argmax, no collapse; 92.43 ± 0.32 by DARTS' rule (``derivation="nonzero"``: the strongest op other than
  ``none``; +1.54 [+0.30, +2.84] on the same searches), which is SurgeNAS' derivation here (layer-wise spaces have
  no zero op, so there it is the argmax).
- **Schedules**: the weights' gradient norm is clipped (``w_grad_clip``, thesis: 5), alpha's Adam lr is constant
  (thesis: 7.5e-4 fixed), the temperature falls from ``tau_start`` (thesis: 1) towards 0 as the engine's default.
  These are :class:`~edgenas.search.engine.SearchConfig` values; :func:`surgenas_config` sets the thesis' ones.

Outputs as every strategy, plus each weight step's per-layer softmax of alpha and its paths in the trajectory,
``alpha.png`` (the thesis' Fig 3.13 view) and the per-op update counts in ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from edgenas.predictors.base import Predictor
from edgenas.search.strategy import Strategy, register_strategy
from edgenas.search.supernet import Supernet

if TYPE_CHECKING:
    from edgenas.search.engine import SearchConfig

#: The thesis' search settings (Sec 3.3.1, 3.3.3, 3.4.1): SGD 0.1 cosine, momentum 0.9, wd 3e-5, clip 5; Adam
#: 7.5e-4 fixed, wd 1e-3; temperature from 1; phi from 2; 25 of 75 epochs warm-up (scaled by the caller's epochs).
THESIS_SETTINGS: dict[str, Any] = {
    "w_lr": 0.1,
    "w_lr_schedule": "cosine",
    "w_momentum": 0.9,
    "w_weight_decay": 3e-5,
    "w_grad_clip": 5.0,
    "alpha_lr": 7.5e-4,
    "alpha_weight_decay": 1e-3,
    "alpha_lr_schedule": "constant",
    "tau_start": 1.0,
    "identity_phi": 2.0,
}
#: The settings that are SurgeNAS' own rather than an optimiser budget's: a harness that sets every strategy's
#: optimisers alike (the NAS-Bench-201 referee) keeps these (:attr:`SurgeNAS.method_settings`).
METHOD_KEYS = ("w_grad_clip", "tau_start", "identity_phi")
#: The thesis' share of warm-up epochs (25 of 75).
THESIS_WARMUP_SHARE = 25 / 75


class SurgeNAS(Strategy):
    """One-level search, ordered fair paths, identity mapping, loss CE + beta * LAT per path (thesis Ch 3)."""

    name = "surgenas"
    single_path = True
    one_level = True
    records_probabilities = True
    derivation = "nonzero"  # the argmax where a space has no zero op (module docstring)
    method_settings = MappingProxyType({k: THESIS_SETTINGS[k] for k in METHOD_KEYS})

    def constraint(self, config: SearchConfig) -> str:
        return "fixed"  # beta is the trade-off; no multiplier is learned

    def weight_paths(
        self, supernet: Supernet, config: SearchConfig, step: int, tau: float, *, fair: bool
    ) -> Iterator[torch.Tensor]:
        return supernet.ordered_paths(step, tau, replacement=config.path_sampling == "independent")

    def path_penalty(
        self, weights: torch.Tensor, predictors: Sequence[Predictor], config: SearchConfig
    ) -> torch.Tensor | None:
        if not config.beta or not predictors:
            return None
        return config.beta * sum(p(weights[None])[0] for p in predictors)

    def identity_weight(self, config: SearchConfig, progress: float) -> float:
        return config.identity_phi * max(0.0, 1.0 - progress)


register_strategy(SurgeNAS())


def surgenas_config(config: SearchConfig, *, warmup: bool = True) -> SearchConfig:
    """``config`` as a SurgeNAS search with the thesis' settings (:data:`THESIS_SETTINGS`); ``warmup``: its share of
    warm-up epochs too (at least one when the search has two epochs or more)."""
    settings = dict(THESIS_SETTINGS, method="surgenas")
    if warmup:
        settings["warmup_epochs"] = min(config.epochs - 1, max(1, round(config.epochs * THESIS_WARMUP_SHARE)))
    return replace(config, **settings)

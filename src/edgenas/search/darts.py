"""The classic differentiable baselines on the shared engine: DARTS and GDAS (Liu et al., ICLR 2019; Dong & Yang,
CVPR 2019), as NAS-Bench-201 evaluates them (Dong & Yang, ICLR 2020).

- **DARTS** (first order): every layer mixes all its ops by ``softmax(alpha)`` with no noise
  (:meth:`~edgenas.search.supernet.Supernet.sample_softmax`), in the weight phase and the architecture phase; alpha
  is updated on the validation split with the weights fixed (the engine's alternation), no second-order term.
  The architecture is DARTS' own reading of alpha (Liu et al. 2019, Sec 2.4): the strongest op of each edge
  *among the non-zero ops* (``derivation = "nonzero"``; NAS-Bench-201's scripts take the plain argmax). Measured on
  the referee (``benchmarks/results/nb201_parity.md``, derivation table: the same 35 searches' final alpha read both
  ways, 7 loops x 5 seeds): +2.37 points [+1.71, +3.08] over the argmax, resolved; on NNI's loop alone 92.35 ±
  1.30 (n = 5; +1.54 [-0.11, +3.25], not resolved) against NNI's DARTS' 92.36 ± 0.73 (n = 3).
- **GDAS**: one hard Gumbel-softmax path per pass (the straight-through sample LightNAS uses too), with the
  temperature decaying *linearly* from ``tau_start`` to ``tau_end`` over the search epochs (GDAS: 10 -> 0.1; set
  them in :class:`~edgenas.search.engine.SearchConfig`).

Both carry the engine's latency term ``lambda (LAT / T - 1)`` with LightNAS' learned multiplier (thesis Table 4.3,
"DARTS/GDAS + our budget"); with ``lambda_lr = 0`` and ``lambda_p = 0`` the multiplier stays at 0 and they are the
plain, accuracy-only baselines. The protocol's other settings (SGD 0.025 cosine, Adam 3e-4 on alpha, 50 epochs,
batch 64) are :class:`SearchConfig` values, not the strategy's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from edgenas.search.strategy import Strategy, register_strategy
from edgenas.search.supernet import Supernet

if TYPE_CHECKING:
    from edgenas.search.engine import SearchConfig


class DARTS(Strategy):
    """Softmax mixing of every op, no noise (first-order DARTS)."""

    name = "darts"
    single_path = False
    derivation = "nonzero"

    def sample(self, supernet: Supernet, step: int, tau: float) -> torch.Tensor:
        return supernet.sample_softmax()


class GDAS(Strategy):
    """One hard Gumbel path per pass, temperature decaying linearly from ``tau_start`` to ``tau_end``."""

    name = "gdas"
    single_path = True

    def tau(self, config: SearchConfig, epoch: int) -> float:
        search_epochs = config.epochs - config.warmup_epochs
        progress = 0.0 if search_epochs <= 1 else max(0, epoch - config.warmup_epochs) / (search_epochs - 1)
        return config.tau_start + (config.tau_end - config.tau_start) * min(1.0, progress)


register_strategy(DARTS())
register_strategy(GDAS())

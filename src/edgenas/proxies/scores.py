"""The registered proxies: BTE (thesis Definition 4.1), TSE and its last-epoch variant (Ru et al. 2021), and the
Jacobian covariance score (Mellor et al. 2021). Each reads a :class:`~edgenas.proxies.probe.Trace`."""

from __future__ import annotations

import numpy as np

from edgenas.proxies._registry import Proxy, ProxyScore, register_proxy
from edgenas.proxies.probe import Trace

#: TSE-E sums the losses of this many last epochs (Ru et al. 2021 report E = 1 as a robust choice early on).
TSE_E_LAST_EPOCHS = 1


def _improvements(losses: np.ndarray) -> np.ndarray:
    """Each batch's relative loss improvement per epoch, ``(E-1) x N``, of an ``E x N`` loss table."""
    if losses.ndim != 2 or losses.shape[0] < 2:
        raise ValueError(f"BTE needs an E x N loss table with E >= 2, got shape {losses.shape}")
    return (losses[:-1] - losses[1:]) / losses[:-1]


def bte(losses: np.ndarray) -> float:
    """Batchwise Training Estimation of an ``E x N`` loss table (thesis Definition 4.1):
    ``sum_n prod_{e=1}^{E-1} (L_e(n) - L_{e+1}(n)) / L_e(n)``.

    Taken exactly as written: a batch whose loss rose in two epochs contributes a positive product, as does one
    whose loss fell in both; with E = 2 it is the summed relative improvement of the second epoch.
    """
    return float(np.prod(_improvements(losses), axis=0).sum())


def bte_clamped(losses: np.ndarray) -> float:
    """BTE with each epoch's relative improvement clamped at 0 before the product (beyond the thesis): a batch whose
    loss rose in any epoch contributes 0 instead of flipping its product's sign (Definition 4.1 as written counts a
    batch that got worse in two epochs as one that improved). An option for the rank study to weigh against the
    thesis' form (``benchmarks/proxies.py``)."""
    return float(np.prod(np.clip(_improvements(losses), 0.0, None), axis=0).sum())


@register_proxy("bte")
class BTE(Proxy):
    """Batchwise training estimation: the per-batch relative loss improvements multiplied over epochs, summed."""

    min_epochs = 2

    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        losses = trace.losses[:epochs]
        return ProxyScore(bte(losses), {"epochs": epochs, "batches": int(losses.shape[1])})


@register_proxy("bte-clamped")
class BTEClamped(Proxy):
    """BTE whose per-epoch improvements are clamped at 0 (:func:`bte_clamped`; beyond the thesis)."""

    min_epochs = 2

    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        losses = trace.losses[:epochs]
        return ProxyScore(bte_clamped(losses), {"epochs": epochs, "batches": int(losses.shape[1])})


@register_proxy("tse")
class TSE(Proxy):
    """Training speed estimation: minus the sum of every batch's training loss over the epochs (lower loss summed
    over training = faster learner = higher score)."""

    min_epochs = 1

    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        total = float(trace.losses[:epochs].sum())
        return ProxyScore(-total, {"epochs": epochs, "loss_sum": total})


@register_proxy("tse-e")
class TSELastEpochs(Proxy):
    """TSE-E: minus the summed training losses of the last ``TSE_E_LAST_EPOCHS`` epochs of the budget."""

    min_epochs = 1

    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        first = max(0, epochs - TSE_E_LAST_EPOCHS)
        total = float(trace.losses[first:epochs].sum())
        return ProxyScore(-total, {"epochs": epochs, "last_epochs": epochs - first, "loss_sum": total})


@register_proxy("jacobian")
class Jacobian(Proxy):
    """Jacobian covariance of the weights after ``epochs`` epochs (0: at initialisation, the training-free score)."""

    needs_jacobian = True

    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        return ProxyScore(trace.jacobian[epochs], {"epochs": epochs})

"""How good a predictor is: the scores every predictor is reported with (one module, shared by all kinds).

* ``rmse``, ``mae`` in the target's unit (ms or mJ); ``mape`` in percent.
* ``kendall_tau`` (tau-b, so ties are handled) and ``spearman`` (rank correlation with average ranks for ties):
  what a search that ranks architectures relies on.
* ``within_5``, ``within_10``: share (%) of predictions within +-5% / +-10% of the measured value (nn-Meter's
  accuracy metric).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sstats

from edgenas.errors import MeasurementError


def scores(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> dict[str, float]:
    """All scores of ``predicted`` against ``measured`` (same length, measured values positive).

    Raises:
        MeasurementError: lengths differ, fewer than 2 points, or a non-positive measured value.
    """
    p = np.asarray(predicted, dtype=float).ravel()
    y = np.asarray(measured, dtype=float).ravel()
    if p.shape != y.shape:
        raise MeasurementError(f"{len(p)} predictions for {len(y)} measurements")
    if len(y) < 2:
        raise MeasurementError("scores need at least 2 points")
    if not np.all(y > 0):
        raise MeasurementError("measured values must be positive (relative errors divide by them)")
    err = p - y
    rel = np.abs(err) / y
    constant = np.ptp(p) == 0 or np.ptp(y) == 0  # rank correlations are undefined for a constant vector
    return {
        "n": len(y),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(100 * np.mean(rel)),
        "kendall_tau": float("nan") if constant else float(sstats.kendalltau(p, y).statistic),
        "spearman": float("nan") if constant else float(sstats.spearmanr(p, y).statistic),
        "within_5": float(100 * np.mean(rel <= 0.05)),
        "within_10": float(100 * np.mean(rel <= 0.10)),
    }

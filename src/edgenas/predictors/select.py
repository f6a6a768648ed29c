"""Choosing a predictor's kind by measurement (``predictor.kind = "auto"`` in a run).

Which kind ranks a space's archs best depends on the profile: on 150 archs of ``mbv2-cifar`` one run's GNN scored
Spearman 0.58 on its held-out fifth and another's 0.98 (issue 29). :func:`choose_kind` fits every candidate kind on
part of the *training* rows and scores it on the rest of them (an inner validation split), so the held-out test rows
that report the chosen predictor's quality played no part in choosing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgenas.errors import MeasurementError
from edgenas.predictors.data import ArchTable
from edgenas.predictors.fit import FitConfig, fit_predictor
from edgenas.predictors.scores import scores

#: The kinds ``auto`` chooses among: additive (LUT), per-layer one-hot MLP, and the graph predictor (SurgeNAS).
AUTO_KINDS = ("lut", "mlp", "gnn")
#: Fitting settings when none are given.
DEFAULT_FIT = FitConfig()
#: Share of the training rows held out to validate each kind.
VALIDATION_SHARE = 0.25


def choose_kind(
    table: ArchTable, kinds: Sequence[str] = AUTO_KINDS, config: FitConfig = DEFAULT_FIT, *, seed: int = 0
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The kind among ``kinds`` with the best Spearman (ties: the lower MAPE) on an inner validation split of
    ``table``, and every kind's validation scores.

    Raises:
        MeasurementError: no kinds, or too few rows to split.
    """
    if not kinds:
        raise MeasurementError("choosing a predictor needs at least one kind")
    fit_rows, validation = table.split(1 - VALIDATION_SHARE, seed=seed)
    found: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        predictor = fit_predictor(kind, fit_rows, config)
        predicted = np.asarray(predictor.predict(validation.specs), float).reshape(-1)
        found[kind] = scores(predicted, validation.values)
    best = max(kinds, key=lambda k: (_ranking(found[k]), -found[k]["mape"]))
    return best, found


def _ranking(scored: dict[str, Any]) -> float:
    """A kind's Spearman for the choice (3 decimals); a kind whose predictions are constant (Spearman NaN: a fit
    that collapsed) ranks last."""
    rho = scored["spearman"]
    return -2.0 if rho is None or not np.isfinite(rho) else round(float(rho), 3)

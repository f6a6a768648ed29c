"""Latency and energy predictors: LUT, MLP, GNN (with attention) and GCN, plus scikit-learn regressors to compare.

All network kinds map relaxed one-hot encodings (``N x L x K``) to values differentiably (:class:`Predictor`);
scores come from one module (:mod:`edgenas.predictors.scores`).
"""

from edgenas.predictors.base import NETWORK_KINDS, Predictor, PredictorMeta, build_network
from edgenas.predictors.data import ArchTable, table_from_csv, table_from_store
from edgenas.predictors.fit import (
    KINDS,
    SKLEARN_KINDS,
    FitConfig,
    adapt_predictor,
    fit_on_store,
    fit_predictor,
    fit_sklearn,
    pooled_table,
)
from edgenas.predictors.scores import scores

__all__ = [
    "KINDS",
    "NETWORK_KINDS",
    "SKLEARN_KINDS",
    "ArchTable",
    "FitConfig",
    "Predictor",
    "PredictorMeta",
    "adapt_predictor",
    "build_network",
    "fit_on_store",
    "fit_predictor",
    "fit_sklearn",
    "pooled_table",
    "scores",
    "table_from_csv",
    "table_from_store",
]

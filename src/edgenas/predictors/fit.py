"""Fitting predictors: Adam with a cosine schedule and batch 8 (thesis defaults), early stopping on a validation
split, target standardisation; scikit-learn regressors for the comparison of thesis Fig 3.9."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgenas._random import seeded_torch
from edgenas.errors import MeasurementError
from edgenas.predictors.base import GNN_ATTENTION, NETWORK_KINDS, Predictor, PredictorMeta, build_network
from edgenas.predictors.data import ArchTable
from edgenas.predictors.scores import scores
from edgenas.spaces import SearchSpace
from edgenas.spaces.spec import thaw

SKLEARN_KINDS = ("svr", "rf", "gbr")
KINDS = (*NETWORK_KINDS, *SKLEARN_KINDS)


@dataclass(frozen=True)
class FitConfig:
    """Training options of the network kinds.

    Attributes:
        epochs: maximum passes over the training rows.
        batch_size: rows per step (thesis: 8).
        lr: Adam learning rate (thesis: 1e-3), decayed to 0 with a cosine.
        weight_decay: Adam weight decay.
        val_fraction: share of the training rows held out for early stopping.
        patience: epochs without a better validation loss before stopping.
        seed: seed of the split, the initialisation and the batch order.
    """

    epochs: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 20
    seed: int = 0


def _transform(kind: str) -> str:
    return "none" if kind == "lut" else "log"


def fit_predictor(
    kind: str, table: ArchTable, config: FitConfig = FitConfig(), *, hyper: dict[str, Any] | None = None
) -> Predictor:
    """Fit a network predictor of ``kind`` (mlp, gnn, gcn, lut) on ``table`` (seeded by ``config.seed``; the
    caller's torch RNG is left as it was).

    Raises:
        MeasurementError: unknown kind, or too few rows.
    """
    with seeded_torch(config.seed):
        return _fit_predictor(kind, table, config, hyper)


def _fit_predictor(kind: str, table: ArchTable, config: FitConfig, hyper: dict[str, Any] | None) -> Predictor:
    if kind not in NETWORK_KINDS:
        raise MeasurementError(f"unknown predictor kind {kind!r}; kinds: {', '.join(KINDS)}")
    if len(table) < 4:
        raise MeasurementError(f"{len(table)} rows are too few to fit a predictor")
    space = table.space
    x_all = space.one_hot(table.specs)
    transform = _transform(kind)
    t_all = np.log(table.values) if transform == "log" else table.values.astype(float)
    n_val = max(1, round(config.val_fraction * len(table))) if len(table) >= 10 else 0
    order = np.random.default_rng(config.seed).permutation(len(table))
    val_idx, train_idx = order[:n_val], order[n_val:]
    mean, std = float(t_all[train_idx].mean()), float(t_all[train_idx].std() or 1.0)
    target = torch.tensor((t_all - mean) / std, dtype=torch.float32)
    if kind == "gnn":  # record the attention form, so the file loads as the network it was fitted as
        hyper = {"attention": GNN_ATTENTION, **(hyper or {})}
    net = build_network(kind, space, hyper)
    if kind == "lut":
        _init_lut_by_least_squares(net, x_all[train_idx], target[train_idx])
    meta = PredictorMeta(
        kind=kind,
        space=space.name,
        space_options={k: thaw(v) for k, v in space.options},
        space_hash=space.config_hash,
        metric=table.metric,
        device=table.device,
        train_size=len(table),
        value_range=(float(table.values.min()), float(table.values.max())),
        transform=transform,
        mean=mean,
        std=std,
        fingerprint=table.fingerprint,
        hyper=dict(hyper or {}),
        level=dict(table.level),
    )
    predictor = Predictor(net, meta)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    train_x, train_y = x_all[train_idx], target[train_idx]
    val_x, val_y = x_all[val_idx], target[val_idx]
    best_loss, best_state, stale = float("inf"), copy.deepcopy(net.state_dict()), 0
    # the LUT is linear: least squares is its optimum, gradient steps could only move it away
    for _ in range(0 if kind == "lut" else config.epochs):
        net.train()
        perm = torch.randperm(len(train_idx), generator=generator)
        for i in range(0, len(perm), config.batch_size):
            b = perm[i : i + config.batch_size]
            loss = torch.mean((net(train_x[b]) - train_y[b]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        if n_val == 0:
            continue
        net.eval()
        with torch.no_grad():
            val_loss = float(torch.mean((net(val_x) - val_y) ** 2))
        if val_loss < best_loss - 1e-7:
            best_loss, best_state, stale = val_loss, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    if n_val:
        if kind != "lut":
            net.load_state_dict(best_state)
        with torch.no_grad():
            predictor.eval()
            val_pred = predictor(val_x).numpy()
        if n_val >= 2:
            predictor.meta.scores = {"validation": scores(val_pred, table.values[val_idx])}
    predictor.eval()
    return predictor


def _init_lut_by_least_squares(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Solve the linear LUT exactly (minimum-norm least squares) instead of waiting for SGD to find it."""
    design = torch.cat([x.flatten(1), torch.ones(len(x), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, y.double().unsqueeze(1), driver="gelsd").solution.squeeze(1)
    with torch.no_grad():
        net.table.copy_(solution[:-1].view_as(net.table).float())
        net.constant.copy_(solution[-1].float())


def fit_sklearn(kind: str, table: ArchTable, seed: int = 0) -> Any:
    """A scikit-learn regressor (``svr``, ``rf``, ``gbr``) on the flattened one-hot and log target.

    Returns an object with ``predict_values(specs) -> np.ndarray``; these kinds are for comparison only (not
    differentiable and not saved).
    """
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.svm import SVR

    models = {
        "svr": lambda: SVR(C=10.0, epsilon=0.01),
        "rf": lambda: RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1),
        "gbr": lambda: GradientBoostingRegressor(n_estimators=300, max_depth=4, random_state=seed),
    }
    if kind not in models:
        raise MeasurementError(f"unknown regressor {kind!r}; regressors: {', '.join(models)}")
    space = table.space
    x = space.one_hot(table.specs).flatten(1).numpy()
    target = np.log(table.values)
    mean, std = target.mean(), target.std() or 1.0
    model = models[kind]()
    model.fit(x, (target - mean) / std)

    class Fitted:
        def predict_values(self, specs: list) -> np.ndarray:
            return np.exp(mean + std * model.predict(space.one_hot(specs).flatten(1).numpy()))

    return Fitted()


def pooled_table(tables: list[ArchTable]) -> ArchTable:
    """Several devices' tables of one space as one table for pre-training: each device's log values are standardised
    separately (so devices of different speed weigh alike) and mapped back with exp, so a log-target predictor
    fitted on the result learns the devices' shared ranking structure.

    Raises:
        MeasurementError: the tables belong to different spaces, or none is given.
    """
    if not tables:
        raise MeasurementError("pooling needs at least one table")
    space = tables[0].space
    if any(t.space.config_hash != space.config_hash for t in tables):
        raise MeasurementError("pooled tables must belong to the same space and configuration")
    specs, values = [], []
    for t in tables:
        logs = np.log(t.values)
        specs += t.specs
        values.append(np.exp((logs - logs.mean()) / (logs.std() or 1.0)))
    return ArchTable(space, specs, np.concatenate(values), tables[0].metric, "+".join(t.device for t in tables))


def adapt_predictor(
    predictor: Predictor, shots: ArchTable, *, steps: int = 300, lr: float = 1e-3, seed: int = 0
) -> Predictor:
    """See :func:`_adapt_predictor` (seeded; the caller's torch RNG is left as it was)."""
    with seeded_torch(seed):
        return _adapt_predictor(predictor, shots, steps=steps, lr=lr, seed=seed)


def _adapt_predictor(predictor: Predictor, shots: ArchTable, *, steps: int, lr: float, seed: int) -> Predictor:
    """Few-shot transfer: a copy of ``predictor`` fine-tuned on a new device's ``shots``.

    The output scale moves to the new device first (mean and spread of the shots' log values; the pre-trained
    spread is kept when there are fewer than 5 shots), then all weights are fine-tuned full-batch with Adam for
    ``steps`` steps. The LUT is refitted by least squares on the shots instead (it has no shared structure to keep).
    """
    if len(shots) < 2:
        raise MeasurementError("adaptation needs at least 2 measured architectures of the new device")
    if shots.space.config_hash != predictor.meta.space_hash:
        raise MeasurementError("the shots belong to another space than the predictor")
    if predictor.meta.kind == "lut":
        return fit_predictor("lut", shots, FitConfig(seed=seed))
    adapted = copy.deepcopy(predictor)
    meta = adapted.meta
    logs = np.log(shots.values) if meta.transform == "log" else shots.values.astype(float)
    meta.mean = float(logs.mean())
    if len(shots) >= 5:
        meta.std = float(logs.std() or meta.std)
    meta.device, meta.train_size = shots.device, len(shots)
    meta.value_range = (float(shots.values.min()), float(shots.values.max()))
    meta.fingerprint, meta.scores = shots.fingerprint, {}
    x = shots.space.one_hot(shots.specs)
    y = torch.tensor((logs - meta.mean) / meta.std, dtype=torch.float32)
    optimizer = torch.optim.Adam(adapted.net.parameters(), lr=lr)
    adapted.net.train()
    for _ in range(steps):
        loss = torch.mean((adapted.net(x) - y) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    adapted.eval()
    return adapted


#: Held-out share of the measured architectures a predictor fitted by :func:`fit_on_store` is scored on.
PREDICTOR_TEST_FRACTION = 0.2


def fit_on_store(
    space: SearchSpace,
    store_path: str | os.PathLike[str],
    device: str,
    *,
    kind: str = "mlp",
    seed: int = 0,
    test_fraction: float = PREDICTOR_TEST_FRACTION,
    level_ms: float | None = None,
) -> Predictor:
    """A ``kind`` predictor fitted on ``1 - test_fraction`` of the device's measured architectures of ``space`` in
    the store, scored on the rest (``predictor.meta.scores["test"]``); latencies at the store's nominal level, or
    at ``level_ms`` (:meth:`edgenas.hardware.store.MeasurementStore.values`)."""
    from edgenas.predictors.data import table_from_store

    table = table_from_store(store_path, device, space, level_ms=level_ms)
    train, test = table.split(1 - test_fraction, seed=seed)
    predictor = fit_predictor(kind, train, FitConfig(seed=seed))
    predictor.meta.scores["test"] = scores(np.asarray(predictor.predict(test.specs), float), test.values)
    return predictor

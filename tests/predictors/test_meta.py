"""MAML (thesis Eq 5.4-5.6) with torch.func: the inner step is plain SGD, and on a toy family of regressions the
adapted model beats the unadapted one and the one trained on the shots alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgenas.errors import PredictorError
from edgenas.predictors.meta import (
    ACCURACY_SCALE,
    MetaConfig,
    MetaLearner,
    Task,
    compare_predictors,
    fit_regressor,
    predict_accuracy,
)

L = 8


def toy_task(slope: float, offset: float, n: int, seed: int) -> Task:
    """Accuracy = 50 + slope * (w . mask) + offset: tasks share the direction w, not the level or the spread."""
    w = np.random.default_rng(99).normal(size=L)
    x = np.random.default_rng(seed).integers(0, 2, size=(n, L))
    return Task.of(x, 50 + slope * (x @ w) + offset, name=f"toy{seed}")


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(0)
    return [toy_task(rng.uniform(0.5, 3), rng.uniform(-20, 20), 40, seed) for seed in range(20)]


def test_inner_step_is_one_sgd_step() -> None:
    learner = MetaLearner(L, MetaConfig(hidden=(16,), inner_lr=0.05))
    task = toy_task(1.0, 0.0, 12, 1)
    adapted = learner.inner(learner.params(), task.x, task.y)
    net = learner.net
    loss = F.mse_loss(net(task.x).squeeze(-1), task.y)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    for (name, p), g in zip(net.named_parameters(), grads, strict=True):
        assert torch.allclose(adapted[name], p - 0.05 * g, atol=1e-6)


def test_outer_gradient_flows_through_the_inner_step(tasks) -> None:
    learner = MetaLearner(L, MetaConfig(hidden=(16,)))
    rng = np.random.default_rng(0)
    from edgenas.predictors.meta import _meta_batch

    batch = _meta_batch(tasks, learner.config, rng)
    gradient, loss = learner.outer_gradient(learner.params(), batch)
    assert loss > 0 and all(torch.isfinite(g).all() for g in gradient.values())
    # second order: differs from the gradient of the query loss at theta itself (first-order would ignore the step)
    _, _, xq, yq = batch
    plain = torch.func.grad(lambda p: learner._loss(p, xq[0], yq[0]))(learner.params())
    assert any(not torch.allclose(gradient[k], plain[k]) for k in plain)


def test_adapted_beats_unadapted_and_shots_only(tasks) -> None:
    shots, held = toy_task(2.5, 15, 10, 100), toy_task(2.5, 15, 50, 101)
    config = MetaConfig(meta_steps=300, hidden=(32, 32))
    learner = MetaLearner(L, config)
    learner.meta_train(tasks)
    truth = held.y.numpy() * ACCURACY_SCALE

    def rmse(net) -> float:
        return float(np.sqrt(np.mean((predict_accuracy(net, held.x) - truth) ** 2)))

    adapted, unadapted, alone = rmse(learner.adapted(shots)), rmse(learner.net), rmse(fit_regressor(shots, config))
    assert adapted < 0.6 * unadapted and adapted < 0.6 * alone
    table = compare_predictors(tasks, shots, held, config)
    assert set(table) == {"maml", "target-only", "transfer", "fine-tune"}
    assert table["maml"]["rmse"] == pytest.approx(adapted, rel=1e-4)


def test_tasks_smaller_than_shots_plus_queries_are_refused() -> None:
    learner = MetaLearner(L, MetaConfig(shots=10, queries=10))
    with pytest.raises(PredictorError, match="shots"):
        learner.meta_train([toy_task(1, 0, 12, 0)])
    with pytest.raises(PredictorError):
        MetaConfig(inner_lr=0).check()

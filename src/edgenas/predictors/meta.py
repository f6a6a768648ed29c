"""The meta-accuracy predictor of Domino (thesis Sec 5.3.3, Eq 5.4-5.6): MAML over (mask, accuracy) pairs.

Accuracy pairs are expensive on the target task and cheap on a proxy task (short trainings on a small subset at low
resolution). MAML (Finn et al. 2017) learns an initialisation theta of a small regressor from many proxy *tasks*
such that one (or a few) SGD steps on a handful of target pairs adapt it well:

    inner (Eq 5.4):  theta'_T = theta - alpha * grad L_T^support(theta)
    outer (Eq 5.5):  theta   <- theta - beta * grad sum_T L_T^query(theta'_T)
    adapt (Eq 5.6):  theta*  = theta - alpha * grad L_target^shots(theta)   (the same inner steps)

written with ``torch.func`` (``functional_call``, ``grad``, ``vmap`` over the tasks of a meta-batch), so the outer
gradient flows through the inner steps (second order).

Tasks: one proxy training of a mask records its test accuracy after every epoch, so the proxy pairs form one task per
budget (accuracy after 1, 2, ... epochs): related regressions whose level and spread differ, as the target's does.

The regressor reads the mask as L floats and predicts accuracy in percent divided by :data:`ACCURACY_SCALE`
(targets stay near 1, so one inner step of a fixed size means the same on every task). The three baselines of thesis
Fig 5.6 share it: trained on the target shots only, trained on the proxy pairs and transferred, and the latter
fine-tuned on the shots.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from edgenas._random import seeded_torch
from edgenas.errors import PredictorError

#: Accuracies (%) are divided by this before regression.
ACCURACY_SCALE = 100.0


@dataclass(frozen=True)
class MetaConfig:
    """Settings of meta-training and adaptation.

    Attributes:
        hidden: hidden widths of the regressor (the thesis' latency MLP: 128-64).
        inner_lr: alpha, the step size of the inner (and adaptation) SGD steps.
        inner_steps: inner SGD steps (thesis: one).
        outer_lr: beta, the step size of the outer SGD (momentum 0.9).
        meta_steps: outer updates.
        tasks_per_step: tasks in one meta-batch.
        shots: support pairs per task (thesis: 10, as many as the target gives).
        queries: query pairs per task.
        fit_steps: Adam steps of the plain regressions (the baselines).
        fit_lr: their learning rate.
        seed: seed of the initialisation and of the task draws.
    """

    hidden: tuple[int, ...] = (128, 64)
    inner_lr: float = 0.1
    inner_steps: int = 1
    outer_lr: float = 0.01
    meta_steps: int = 1000
    tasks_per_step: int = 8
    shots: int = 10
    queries: int = 10
    fit_steps: int = 500
    fit_lr: float = 1e-3
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`PredictorError` for settings that cannot work."""
        positive = (self.inner_lr, self.outer_lr, self.fit_lr)
        counts = (self.inner_steps, self.meta_steps, self.tasks_per_step, self.shots, self.queries, self.fit_steps)
        if min(positive) <= 0 or min(counts) < 1 or not self.hidden or min(self.hidden) < 1:
            raise PredictorError("meta-predictor: learning rates must be > 0, counts and hidden widths >= 1")


@dataclass
class Task:
    """One regression task: masks (N x L floats, 1 = kept) and accuracies (N, percent)."""

    x: torch.Tensor
    y: torch.Tensor
    name: str = ""

    @classmethod
    def of(cls, masks: Sequence[Sequence[int]], accuracies: Sequence[float], name: str = "") -> Task:
        x = torch.tensor(np.asarray(masks, dtype=np.float32))
        y = torch.tensor(np.asarray(accuracies, dtype=np.float32))
        if x.dim() != 2 or len(x) != len(y) or len(x) == 0:
            raise PredictorError(f"task {name!r}: need N masks of equal length and N accuracies")
        return cls(x, y / ACCURACY_SCALE, name)


def regressor(num_inputs: int, hidden: Sequence[int]) -> nn.Module:
    """The MLP shared by MAML and its baselines (ReLU, scalar output)."""
    layers: list[nn.Module] = []
    width = num_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


Params = dict[str, torch.Tensor]


class MetaLearner:
    """A regressor and the MAML steps over it (see the module docstring)."""

    def __init__(self, num_inputs: int, config: MetaConfig) -> None:
        config.check()
        self.config = config
        with seeded_torch(config.seed):
            self.net = regressor(num_inputs, config.hidden)
        self.num_inputs = num_inputs

    # -- functional pieces ----------------------------------------------------------------------------------------
    def params(self) -> Params:
        return {k: v.detach().clone() for k, v in self.net.named_parameters()}

    def _predict(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, params, (x,)).squeeze(-1)

    def _loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self._predict(params, x), y)

    def inner(self, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int | None = None) -> Params:
        """Eq 5.4: ``steps`` (default ``inner_steps``) SGD steps of size alpha on ``(x, y)`` from ``params``."""
        for _ in range(self.config.inner_steps if steps is None else steps):
            g = grad(self._loss)(params, x, y)
            params = {k: p - self.config.inner_lr * g[k] for k, p in params.items()}
        return params

    def _query_loss(self, params: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor):
        return self._loss(self.inner(params, xs, ys), xq, yq)

    def outer_gradient(self, params: Params, batch: tuple[torch.Tensor, ...]) -> tuple[Params, float]:
        """Eq 5.5's gradient: d/dtheta of the mean query loss after the inner steps, over a meta-batch
        ``(xs, ys, xq, yq)`` with a leading task dimension; and that loss."""

        def meta_loss(p: Params) -> torch.Tensor:
            return vmap(self._query_loss, in_dims=(None, 0, 0, 0, 0))(p, *batch).mean()

        loss = meta_loss(params)
        return grad(meta_loss)(params), float(loss)

    # -- training ---------------------------------------------------------------------------------------------------
    def meta_train(self, tasks: Sequence[Task], on_step: Any = None) -> list[float]:
        """MAML on ``tasks`` (each needs ``shots + queries`` pairs); returns the meta-loss per outer step.

        Raises:
            PredictorError: a task too small for a support and a query set.
        """
        cfg = self.config
        need = cfg.shots + cfg.queries
        small = [t.name for t in tasks if len(t.y) < need]
        if not tasks or small:
            raise PredictorError(f"meta-training needs tasks of >= {need} pairs (shots + queries); too small: {small}")
        rng = np.random.default_rng(cfg.seed)
        params = self.params()
        optimizer = torch.optim.SGD(list(params.values()), lr=cfg.outer_lr, momentum=0.9)
        losses = []
        for step in range(cfg.meta_steps):
            batch = _meta_batch(tasks, cfg, rng)
            gradient, loss = self.outer_gradient(params, batch)
            for name, p in params.items():
                p.grad = gradient[name]
            optimizer.step()
            losses.append(loss)
            if on_step is not None:
                on_step(step + 1, loss)
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                p.copy_(params[name])
        return losses

    def adapted(self, shots: Task) -> nn.Module:
        """Eq 5.6: a copy of the regressor after the inner steps on the target shots."""
        params = self.inner(self.params(), shots.x, shots.y)
        net = copy.deepcopy(self.net)
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(params[name])
        return net


def _meta_batch(tasks: Sequence[Task], cfg: MetaConfig, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """``(xs, ys, xq, yq)``: ``tasks_per_step`` tasks drawn with replacement, each split into disjoint random shots
    and queries."""
    xs, ys, xq, yq = [], [], [], []
    for t in rng.integers(len(tasks), size=cfg.tasks_per_step):
        task = tasks[int(t)]
        order = torch.from_numpy(rng.permutation(len(task.y))[: cfg.shots + cfg.queries])
        s, q = order[: cfg.shots], order[cfg.shots :]
        xs.append(task.x[s])
        ys.append(task.y[s])
        xq.append(task.x[q])
        yq.append(task.y[q])
    return torch.stack(xs), torch.stack(ys), torch.stack(xq), torch.stack(yq)


def fit_regressor(task: Task, config: MetaConfig, start: nn.Module | None = None) -> nn.Module:
    """A regressor trained on ``task`` with Adam (full batch, ``fit_steps``), from ``start`` or a fresh init."""
    with seeded_torch(config.seed):
        net = copy.deepcopy(start) if start is not None else regressor(task.x.shape[1], config.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.fit_lr)
    for _ in range(config.fit_steps):
        optimizer.zero_grad()
        F.mse_loss(net(task.x).squeeze(-1), task.y).backward()
        optimizer.step()
    return net


def predict_accuracy(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Predicted accuracies (%) of masks ``x`` (N x L)."""
    with torch.no_grad():
        return net(x).squeeze(-1).numpy() * ACCURACY_SCALE


def compare_predictors(
    proxy_tasks: Sequence[Task], shots: Task, held_out: Task, config: MetaConfig
) -> dict[str, dict[str, float]]:
    """Thesis Fig 5.6: RMSE (accuracy points) and Spearman on ``held_out`` target pairs of MAML adapted on ``shots``
    and the three baselines (``target-only``, ``transfer``: trained on the last proxy task, ``fine-tune``: that one
    then ``fit_steps`` more on the shots, at a tenth of the learning rate)."""
    from scipy.stats import spearmanr

    meta = MetaLearner(shots.x.shape[1], config)
    meta.meta_train(proxy_tasks)
    transfer = fit_regressor(proxy_tasks[-1], config)
    tuned = fit_regressor(shots, replace(config, fit_lr=config.fit_lr / 10), start=transfer)
    models = {
        "maml": meta.adapted(shots),
        "target-only": fit_regressor(shots, config),
        "transfer": transfer,
        "fine-tune": tuned,
    }
    truth = held_out.y.numpy() * ACCURACY_SCALE
    out = {}
    for name, net in models.items():
        predicted = predict_accuracy(net, held_out.x)
        rho = spearmanr(predicted, truth).statistic if np.ptp(predicted) > 0 else 0.0
        out[name] = {"rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))), "spearman": float(rho)}
    return out

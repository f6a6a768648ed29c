"""The two steps of a supernet search: a weight step on a training batch and an architecture step on a held-out
batch (the strategy's loss), their optimisers and learning-rate schedules, what the torchrun ranks share, and the
trajectory each step writes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from edgenas.errors import SearchError
from edgenas.predictors.base import Predictor
from edgenas.search.budget import LambdaController
from edgenas.search.config import SearchConfig, StepCallback
from edgenas.search.strategy import derived_predictions
from edgenas.search.supernet import Supernet
from edgenas.train.data import BatchTransform
from edgenas.train.distributed import DistEnv, all_reduce_sum


@dataclass(frozen=True)
class Ranks:
    """What the processes of a torchrun search share: batch shards, averaged gradients, means, the same path."""

    env: DistEnv

    def shard(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's share of a global batch."""
        r, n = self.env.rank, self.env.world_size
        return images[r::n], labels[r::n], indices[r::n]

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if self.env.distributed:
            for p in params:
                if p.grad is not None:
                    p.grad = all_reduce_sum(p.grad) / self.env.world_size

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over ranks."""
        return float(all_reduce_sum(value.detach().reshape(1))[0]) / self.env.world_size

    def check_same_path(self, supernet: Supernet, step: int) -> None:
        """Refuse to go on when the ranks sampled different single paths (paths are a function of seed and step)."""
        if self.env.distributed and supernet.state.chosen is not None:
            chosen = torch.tensor(supernet.state.chosen, dtype=torch.float64, device=self.env.device)
            if not torch.equal(all_reduce_sum(chosen), chosen * self.env.world_size):
                raise SearchError(f"ranks sampled different paths at step {step}")


@dataclass
class Steps:
    """The two steps of a search and the trajectory they write: a weight step on a training batch, an architecture
    step on a held-out batch (the strategy's loss), each recorded with its learning rate."""

    supernet: Supernet
    strategy: Any  # edgenas.search.strategy.Strategy
    config: SearchConfig
    ranks: Ranks
    predictors: list[Predictor]
    controllers: list[LambdaController]
    states: dict[str, Any]  # the optimizers and their schedulers (``w_opt``, ``w_sched``, ``a_opt``, ``a_sched``)
    trajectory_path: Path
    to_float_aug: BatchTransform  # training batches: augmented
    to_float: BatchTransform  # architecture batches: not augmented
    step: int = 0
    on_step: StepCallback | None = None
    total_w_steps: int = 1  # weight steps of the whole search (the identity mapping decays over them)

    def record(self, entry: dict[str, Any]) -> None:
        chosen = self.supernet.state.chosen
        entry["path"] = list(chosen) if chosen is not None else None
        if not self.ranks.env.is_main:
            return
        with self.trajectory_path.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
        if self.on_step is not None:
            self.on_step(entry)

    def check_same_path(self) -> None:
        self.ranks.check_same_path(self.supernet, self.step)

    def weight_step(self, batch: Any, epoch: int, tau: float) -> None:
        """One step of w on a training batch; for a one-level strategy after the warm-up, of alpha as well."""
        supernet, device, config = self.supernet, self.ranks.env.device, self.config
        (w_opt, w_sched), (a_opt, a_sched) = self._pair("w"), self._pair("a")
        joint = self.strategy.one_level and epoch >= config.warmup_epochs
        images, labels, indices = self.ranks.shard(*batch)
        x = self.to_float_aug(images.to(device), indices, seed=config.seed, epoch=epoch)
        progress = self.step / max(1, self.total_w_steps - 1) if self.strategy.one_level else 0.0
        supernet.state.phi = self.strategy.identity_weight(config, progress)
        w_opt.zero_grad(set_to_none=True)
        supernet.alpha.grad = None
        fair = config.fair_warmup and epoch < config.warmup_epochs
        ce, paths = self._backward_paths(x, labels.to(device), fair=fair, tau=tau, joint=joint)
        supernet.state.phi = 0.0
        if not joint:
            supernet.alpha.grad = None
        self.ranks.average_gradients([*supernet.weight_parameters(), supernet.alpha])
        if config.w_grad_clip:
            torch.nn.utils.clip_grad_norm_(supernet.weight_parameters(), config.w_grad_clip)
        w_opt.step()
        lr = w_sched.get_last_lr()[0]  # the rate this step used
        w_sched.step()
        entry = {"step": self.step, "epoch": epoch, "phase": "w", "tau": tau, "ce": ce, "lr": lr}
        entry["first_image"] = int(indices[0])  # which split's batch stepped the weights
        if joint:
            entry["alpha_lr"] = a_sched.get_last_lr()[0]
            a_opt.step()
            a_sched.step()
        if self.strategy.records_probabilities:
            probabilities = supernet.probabilities().detach().cpu()
            entry.update(paths=paths, phi=self.strategy.identity_weight(config, progress), probs=probabilities.tolist())
        lambdas, derived = [c.value for c in self.controllers], derived_predictions(supernet, self.predictors)
        self.record({**entry, "lambda": lambdas, "derived": derived, "entropy": supernet.entropy()})
        self.step += 1

    def _backward_paths(
        self, x: torch.Tensor, labels: torch.Tensor, *, fair: bool, tau: float, joint: bool = False
    ) -> tuple[float, list[list[int]]]:
        """Backpropagate the loss of each path the strategy sets for this weight step, one path's forward and
        backward after the other so only one path's activations are alive (their gradients accumulate, as thesis
        Eq 3.12/3.16 sums them); ``joint``: each path's loss adds the strategy's budget term. Returns the mean CE
        over paths and ranks, and the paths."""
        supernet, losses, paths = self.supernet, [], []
        for weights in self.strategy.weight_paths(supernet, self.config, self.step, tau, fair=fair):
            self.check_same_path()
            loss = F.cross_entropy(supernet(x), labels)
            if not torch.isfinite(loss):
                raise SearchError(f"the supernet loss is {loss.item()} at step {self.step}; lower the learning rate")
            losses.append(loss.detach())
            penalty = self.strategy.path_penalty(weights, self.predictors, self.config) if joint else None
            (loss if penalty is None else loss + penalty).backward()
            paths.append(list(supernet.state.chosen or []))
        return self.ranks.mean(torch.stack(losses).mean()), paths

    def alpha_step(self, batch: Any, epoch: int, tau: float) -> None:
        device, (a_opt, a_sched), distributed = self.ranks.env.device, self._pair("a"), self.ranks.env.distributed
        images, labels, indices = self.ranks.shard(*batch)

        def cross_entropy() -> torch.Tensor:
            x = self.to_float(images.to(device), indices)
            self.check_same_path()
            return F.cross_entropy(self.supernet(x), labels.to(device))

        entry = self.strategy.alpha_step(
            self.supernet,
            self.predictors,
            self.controllers,
            a_opt,
            self.step,
            tau,
            cross_entropy if self.config.accuracy else None,
            self.ranks.average_gradients if distributed else None,
        )
        entry["lr"] = a_sched.get_last_lr()[0]
        entry["first_image"] = int(indices[0])  # which split's batch stepped alpha
        a_sched.step()
        if distributed and entry["ce"] is not None:
            entry["ce"] = self.ranks.mean(torch.tensor(entry["ce"], dtype=torch.float64))
        self.record({"step": self.step, "epoch": epoch, "phase": "alpha", **entry})
        self.step += 1

    def _pair(self, prefix: str) -> tuple[Any, Any]:
        return self.states[f"{prefix}_opt"], self.states[f"{prefix}_sched"]


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The lr multiplier of step k under ``schedule`` (:data:`LR_SCHEDULES`) over ``total_steps`` steps."""
    if schedule == "constant":
        return lambda k: 1.0
    return lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps))


def optimizers(
    supernet: Supernet, config: SearchConfig, w_images: int, alpha_images: int, per_batch: bool
) -> tuple[Any, ...]:
    """SGD on w (its schedule over every w step), Adam on alpha (its schedule over the architecture steps: one per
    weight batch when the steps alternate per batch), their schedulers and the images per alpha step."""
    w_steps_per_epoch = max(1, w_images // config.batch_size)
    total_w_steps = w_steps_per_epoch * config.epochs
    w_opt = torch.optim.SGD(
        supernet.weight_parameters(),
        lr=config.w_lr,
        momentum=config.w_momentum,
        weight_decay=config.w_weight_decay,
        nesterov=config.w_nesterov,
    )
    w_sched = torch.optim.lr_scheduler.LambdaLR(w_opt, lr_factor(config.w_lr_schedule, total_w_steps))
    a_opt = torch.optim.Adam(
        [supernet.alpha], lr=config.alpha_lr, betas=(0.5, 0.999), weight_decay=config.alpha_weight_decay
    )
    a_batch = config.alpha_batch_size or config.batch_size
    a_steps_per_epoch = w_steps_per_epoch if per_batch else max(1, alpha_images // a_batch)
    total_a_steps = max(1, a_steps_per_epoch * (config.epochs - config.warmup_epochs))
    a_sched = torch.optim.lr_scheduler.LambdaLR(a_opt, lr_factor(config.alpha_lr_schedule, total_a_steps))
    return w_opt, w_sched, a_opt, a_sched, a_batch

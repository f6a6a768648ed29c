"""Continue a finished search's architecture phase on (refitted) predictors, the weights frozen."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from edgenas.errors import SearchError
from edgenas.report.search_plots import plot_trajectory
from edgenas.rundir import read_summary, write_summary
from edgenas.search.budget import LambdaController
from edgenas.search.config import SearchConfig, SearchResult, Target, same_config
from edgenas.search.engine import (
    build_supernet,
    prepare_targets,
    search_network_space,
    search_split,
    transforms,
)
from edgenas.search.engine import loader as _loader
from edgenas.search.record import read_trajectory
from edgenas.search.strategy import get_strategy
from edgenas.search.supernet import Supernet
from edgenas.spaces import ArchSpec, SearchSpace, save_specs, spec_to_dict
from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.data import ImageData

__all__ = ["refine"]


def _validation_losses(
    supernet: Supernet, data: ImageData, space: SearchSpace, config: SearchConfig, first_step: int
) -> Iterator[Callable[[], torch.Tensor]]:
    """Endless CE closures over the search's architecture half (plain transform), one batch each, in a seeded order
    that changes every pass over the half."""
    _, a_idx = search_split(data.train_labels, config)
    _, to_float = transforms(data, search_network_space(space, config), config)
    batch_size = config.alpha_batch_size or config.batch_size
    device = next(supernet.parameters()).device
    for n in itertools.count():
        for images, labels, indices in _loader(data, a_idx, batch_size, config.seed * 7919 + first_step + n):

            def cross_entropy(images=images, labels=labels, indices=indices) -> torch.Tensor:
                return F.cross_entropy(supernet(to_float(images.to(device), indices)), labels.to(device))

            yield cross_entropy


def _refine_state(
    run: Path, space: SearchSpace, targets: Sequence[Target], config: SearchConfig
) -> tuple[dict[str, Any], Supernet, list[LambdaController]]:
    """The checkpoint of a finished search, its supernet (weights frozen) and its multipliers."""
    ckpt_path = run / "checkpoints" / "last.pt"
    if not ckpt_path.is_file():
        raise SearchError(f"nothing to refine in {run}: no checkpoints/last.pt")
    ckpt = load_checkpoint(ckpt_path)
    if not same_config(ckpt.get("config"), config):
        raise SearchError(f"{ckpt_path} was written by a search with other options")
    constraint = get_strategy(config.method).constraint(config)
    prepare_targets(space, targets, constraint)
    supernet = build_supernet(space, config)
    supernet.load_state_dict(ckpt["supernet"])
    supernet.requires_grad_(False).alpha.requires_grad_(True)  # alpha moves, the weights stay
    controllers = [LambdaController(t.value, constraint, config.lambda_lr, 0.0, config.lambda_p) for t in targets]
    for c, state in zip(controllers, ckpt["lambdas"], strict=False):
        c.load_state_dict(state)
    return ckpt, supernet, controllers


def refine(
    run: str | Path,
    space: SearchSpace,
    targets: Sequence[Target],
    config: SearchConfig,
    steps: int,
    *,
    alpha_lr: float | None = None,
    data: ImageData | None = None,
    accuracy: bool | None = None,
) -> SearchResult:
    """Continue a finished search's architecture phase with (refitted) predictors: ``steps`` alpha/lambda steps from
    the last checkpoint's alpha and multipliers, the weights frozen, the alpha lr decaying from ``alpha_lr``
    (default: ``config.alpha_lr``) to 0. The loss keeps the search's accuracy term (CE of the sampled path on the
    architecture half of ``data``, as in the search) unless ``accuracy`` is False (default: ``config.accuracy``),
    so a correction does not trade accuracy away for latency alone. Appends ``refine`` records to the trajectory and
    rewrites ``arch.json`` and ``summary.json`` (with a ``refined`` count).

    Raises:
        SearchError: no checkpoint in ``run``, a checkpoint of other options, the accuracy term without data, or a
            one-level strategy (no architecture phase to continue).
    """
    run = Path(run)
    if get_strategy(config.method).one_level:
        raise SearchError(f"{config.method} has no separate architecture phase to continue: refine a two-level search")
    keep_ce = config.accuracy if accuracy is None else accuracy
    if keep_ce and data is None:
        raise SearchError("refine keeps the accuracy term: pass the search's data (or accuracy=False)")
    ckpt, supernet, controllers = _refine_state(run, space, targets, config)
    strategy = get_strategy(config.method)
    predictors = [t.predictor.eval().requires_grad_(False) for t in targets]
    lr = config.alpha_lr if alpha_lr is None else alpha_lr
    optimizer = torch.optim.Adam([supernet.alpha], lr=lr, betas=(0.5, 0.999), weight_decay=config.alpha_weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / max(1, steps)))
    )
    trajectory_path = run / "trajectory.jsonl"
    previous = read_trajectory(trajectory_path)
    step = previous[-1]["step"] + 1 if previous else 0
    losses = _validation_losses(supernet, data, space, config, step) if keep_ce and data is not None else None
    with trajectory_path.open("a") as f:
        for _ in range(steps):
            ce = next(losses) if losses is not None else None
            entry = strategy.alpha_step(supernet, predictors, controllers, optimizer, step, config.tau_end, ce)
            schedule.step()
            entry.update(step=step, epoch=config.epochs, phase="refine", path=supernet.state.chosen)
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            step += 1
    ckpt.update(supernet=supernet.state_dict(), lambdas=[c.state_dict() for c in controllers], step=step)
    save_checkpoint(run / "checkpoints" / "last.pt", ckpt)
    arch = supernet.derived_spec()
    save_specs(run / "arch.json", [arch])
    summary = _refined_summary(run, arch, targets, controllers, step)
    trajectory = read_trajectory(trajectory_path)
    plot_trajectory(trajectory, targets, run / "trajectory.png")
    return SearchResult(run, arch, summary, trajectory)


def _refined_summary(
    run: Path, arch: ArchSpec, targets: Sequence[Target], controllers: Sequence[LambdaController], step: int
) -> dict[str, Any]:
    """``summary.json`` rewritten for the refined architecture (its predictions, the multipliers, the count)."""
    final = [float(t.predictor.predict(arch)) for t in targets]
    summary = read_summary(run)
    summary.update(
        arch=str(arch),
        arch_spec=spec_to_dict(arch),
        refined=int(summary.get("refined", 0)) + 1,
        steps=step,
        targets=[
            {**old, "predicted": v, "predicted_error": v / t.value - 1.0, "lambda": c.value}
            for old, t, v, c in zip(
                summary.get("targets", [{}] * len(targets)), targets, final, controllers, strict=True
            )
        ],
    )
    return write_summary(run, summary)

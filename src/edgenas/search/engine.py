"""The search engine: everything a supernet search shares, whatever its strategy (:mod:`edgenas.search.strategy`).

Schedule (thesis Sec 4.4.1, scaled by the options): ``warmup_epochs`` epochs update the weights ``w`` only (paths
sampled from the uniform initial alpha, so every op is trained alike); then every epoch runs a ``w`` phase on the
training split and an architecture phase on the held-out split (``alternate="batch"``: an architecture step on a
held-out batch before every weight step instead, DARTS' Algorithm 1). The strategy named by ``SearchConfig.method``
picks the path of each pass, the temperature, the multipliers' behaviour and the architecture step. LightNAS' step
(the default, :func:`~edgenas.search.strategy.architecture_step`): ``CE + sum_t lambda_t * (PRED_t(sampled path) /
T_t - 1)`` (Eq 4.10), the prediction taken through the hard straight-through path so the gradient reaches alpha
(Eq 4.12); each ``lambda_t`` follows :class:`~edgenas.search.budget.LambdaController` with the *derived* (argmax)
architecture's prediction. ``accuracy=False`` drops CE from the architecture loss (LightNets-Worse, Sec 4.4.3).

Temperature (default): ``tau = tau_start * (tau_end / tau_start) ** progress`` over the search epochs (thesis: 5
decaying towards 0). The sampled hard path does not depend on tau (argmax of ``alpha + G``); tau shapes the
straight-through gradient only.

Run directory: ``config.json``, ``env.json`` (seed, git commit, library versions, device fingerprint: the record a
training run keeps), ``trajectory.jsonl`` (one record per step of either phase), ``checkpoints/last.pt`` (every
epoch; ``resume=True`` continues from it and truncates the trajectory to it), ``arch.json`` (the derived
architecture), ``summary.json`` and ``trajectory.png`` (argmax prediction vs step with the target, thesis Fig 4.12).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from edgenas import rundir
from edgenas.errors import SearchError
from edgenas.rundir import update_summary
from edgenas.search.budget import FeasibleRange, LambdaController, check_feasible, check_space, feasible_range
from edgenas.search.config import (
    ALTERNATIONS,
    LR_SCHEDULES,
    PATH_SAMPLINGS,
    SearchConfig,
    SearchResult,
    StepCallback,
    Target,
    same_config,
)
from edgenas.search.record import finish, truncate_trajectory, write_run_record
from edgenas.search.steps import Ranks, Steps, optimizers
from edgenas.search.strategy import architecture_step, derived_predictions, get_strategy
from edgenas.search.supernet import Supernet
from edgenas.spaces import SearchSpace, get_space
from edgenas.spaces.spec import thaw
from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.data import BatchTransform, ImageData, IndexedDataset, balanced_subset, stratified_split
from edgenas.train.distributed import DistEnv, barrier, convert_batchnorm_for_ddp

CHECKPOINT_VERSION = 1
# the options, budgets and results live in edgenas.search.config; they are re-exported here for the callers
__all__ = [
    "ALTERNATIONS",
    "LR_SCHEDULES",
    "PATH_SAMPLINGS",
    "SearchConfig",
    "SearchResult",
    "Target",
    "architecture_step",
    "prepare_targets",
    "same_config",
    "search",
    "update_summary",
]


def search_split(labels: np.ndarray, config: SearchConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the weight half and the architecture half of the training images: the class-balanced
    ``train_subset`` (all images when 0) split by ``val_fraction``, both seeded by ``config.seed``. A one-level
    strategy holds nothing out: every image trains w and alpha together (``val_fraction`` unused)."""
    pool = (
        balanced_subset(labels, config.train_subset, seed=config.seed)
        if config.train_subset
        else np.arange(len(labels))
    )
    if get_strategy(config.method).one_level:
        return pool, pool[:0]
    w_rel, a_rel = stratified_split(labels[pool], config.val_fraction, seed=config.seed)
    return pool[w_rel], pool[a_rel]


def prepare_targets(space: SearchSpace, targets: Sequence[Target], constraint: str) -> dict[str, FeasibleRange]:
    """Check every target's predictor against the space and its value against the feasible range. No target at all
    is allowed: the search then optimises accuracy only (the unconstrained baselines).

    Raises:
        SearchError: a predictor of another space, two targets of one metric, or an infeasible target.
    """
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise SearchError(f"two targets for the same metric: {names}")
    ranges = {}
    for t in targets:
        check_space(t.predictor, space)
        ranges[t.name] = feasible_range(t.predictor, space)
        if constraint != "fixed":
            if t.value is None:
                raise SearchError(f"a {constraint!r} budget needs a value for {t.name}")
            check_feasible(t.value, ranges[t.name], constraint, t.unit)
    return ranges


def _controller(target: Target, constraint: str, config: SearchConfig, initial: float) -> LambdaController:
    """The multiplier of ``target`` (a target without a value: a fixed one whose T is 1 unit, never read)."""
    value = 1.0 if target.value is None else target.value
    return LambdaController(value, constraint, config.lambda_lr, initial, config.lambda_p)


def _cycled(data: ImageData, indices: np.ndarray, batch_size: int, seed: int) -> Iterator[Any]:
    """Batches of ``indices`` without end: a new seeded order at every pass (the per-batch alternation's alpha
    batches, however many weight batches an epoch has)."""
    for n in itertools.count():
        yield from loader(data, indices, batch_size, seed + 1_000_003 * n)


def loader(data: ImageData, indices: np.ndarray, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        IndexedDataset(data.train, indices),
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(indices) >= batch_size,
        generator=generator,
        num_workers=0,
    )


def search(
    space: SearchSpace,
    targets: Sequence[Target],
    data: ImageData,
    config: SearchConfig,
    run: str | Path,
    *,
    resume: bool = False,
    on_step: StepCallback | None = None,
    dist_env: DistEnv | None = None,
) -> SearchResult:
    """Run one LightNAS (or FBNet) search; see the module docstring.

    Under ``torchrun`` (``dist_env`` from :func:`edgenas.train.distributed.init_distributed`) every rank takes its
    share of each global batch, BatchNorm normalises over the global batch, gradients are averaged by all-reduce
    (no DDP wrapper: unused ops of the single path simply have no gradient on any rank), and every rank samples the
    same path because paths are a function of (seed, step) — checked at every step. Only rank 0 writes files.

    Raises:
        SearchError: bad options, infeasible targets (before any training), or a run directory that holds another
            search (without ``resume``) or none (with it).
    """
    config.check()
    strategy = get_strategy(config.method)
    constraint = strategy.constraint(config)
    ranges = prepare_targets(space, targets, constraint)
    env = dist_env or DistEnv(0, 1, 0, _device(config.device))
    run = Path(run)
    ckpt_path = check_run_dir(run, resume)
    barrier()  # every rank checked the directory before rank 0 creates files in it
    if env.is_main:
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)

    device = env.device
    supernet = _supernet(space, config, env)
    predictors = [t.predictor.to(device).eval().requires_grad_(False) for t in targets]
    controllers = [_controller(t, constraint, config, strategy.lambda_init(config)) for t in targets]
    if config.budget_term == "landing":  # alpha searches for accuracy alone; the landing meets T afterwards
        controllers = [LambdaController(c.target, "fixed", 0.0, 0.0, 0.0) for c in controllers]

    w_idx, a_idx = search_split(data.train_labels, config)
    batch_transforms = transforms(data, search_network_space(space, config), config)
    w_opt, w_sched, a_opt, a_sched, a_batch = optimizers(
        supernet, config, len(w_idx), len(a_idx), strategy.alternates_per_batch(config) or strategy.one_level
    )
    states = {"supernet": supernet, "w_opt": w_opt, "w_sched": w_sched, "a_opt": a_opt, "a_sched": a_sched}
    states["lambdas"] = controllers

    if config.batch_size % env.world_size or (config.alpha_batch_size or config.batch_size) % env.world_size:
        raise SearchError(f"batch sizes must be divisible by the {env.world_size} processes")

    start_epoch, step = 0, 0
    if resume:
        start_epoch, step = _load_state(ckpt_path, config, states)
        if env.is_main:
            truncate_trajectory(run / "trajectory.jsonl", step)
    elif env.is_main:
        write_run_record(
            run, space, targets, data, config, ranges, (len(w_idx), len(a_idx)), device, world_size=env.world_size
        )

    steps = Steps(
        supernet,
        strategy,
        config,
        Ranks(env),
        predictors,
        controllers,
        states,
        run / "trajectory.jsonl",
        *batch_transforms,
    )
    steps.step, steps.on_step = step, on_step  # where a resumed search goes on; who watches the steps
    steps.total_w_steps = max(1, len(w_idx) // config.batch_size) * config.epochs
    started = time.perf_counter()

    for epoch in range(start_epoch, config.epochs):
        supernet.train()
        _epoch(steps, strategy, config, data, (w_idx, a_idx), a_batch, epoch)
        if env.is_main:
            _save_epoch(ckpt_path, states, config, epoch, steps.step)

    arch = supernet.derived_spec()
    final = derived_predictions(supernet, predictors)
    barrier()
    if not env.is_main:
        return SearchResult(run, arch, {}, [])
    seconds = time.perf_counter() - started
    return finish(run, supernet, targets, final, controllers, ranges, config, steps.step, seconds)


def _epoch(
    steps: Steps,
    strategy: Any,
    config: SearchConfig,
    data: ImageData,
    split: tuple[np.ndarray, np.ndarray],
    a_batch: int,
    epoch: int,
) -> None:
    """One epoch of the search: the weight steps, with the architecture steps on held-out batches before each of
    them (DARTS' order, per-batch alternation) or after them all (epoch-wise); none during the warm-up, and none of
    their own for a one-level strategy (alpha moves in the weight steps)."""
    w_idx, a_idx = split
    tau = strategy.tau(config, epoch)
    per_batch = strategy.alternates_per_batch(config)
    separate_alpha = epoch >= config.warmup_epochs and not strategy.one_level
    a_seed = config.seed * 7919 + 2 * epoch + 1
    a_batches = _cycled(data, a_idx, a_batch, a_seed) if separate_alpha else None
    for batch in loader(data, w_idx, config.batch_size, config.seed * 7919 + 2 * epoch):
        if per_batch and a_batches is not None:
            steps.alpha_step(next(a_batches), epoch, tau)
        steps.weight_step(batch, epoch, tau)
    if separate_alpha and not per_batch:
        for batch in loader(data, a_idx, a_batch, a_seed):
            steps.alpha_step(batch, epoch, tau)


def _save_epoch(ckpt_path: Path, states: dict[str, Any], config: SearchConfig, epoch: int, step: int) -> None:
    """The checkpoint after ``epoch``: every state (the multipliers' as a list), the config, where to go on."""
    # GlobalBatchNorm2d has the keys of BatchNorm2d, so the supernet's state loads in either form
    state = {k: v.state_dict() for k, v in states.items() if k != "lambdas"}
    state["lambdas"] = [c.state_dict() for c in states["lambdas"]]
    state.update(version=CHECKPOINT_VERSION, config=asdict(config), epoch=epoch + 1, step=step)
    save_checkpoint(ckpt_path, state)


def total_steps(config: SearchConfig, images: ImageData) -> int:
    """Steps the search will record (the progress bar's total): weight steps of every epoch, plus architecture steps
    after the warm-up, one per weight batch when the strategy alternates per batch."""
    n = config.train_subset or len(images.train_labels)
    if get_strategy(config.method).one_level:  # every image trains w and alpha: no architecture steps
        return max(1, n // config.batch_size) * config.epochs
    w = max(1, round(n * (1 - config.val_fraction)) // config.batch_size)
    a = max(1, round(n * config.val_fraction) // (config.alpha_batch_size or config.batch_size))
    if get_strategy(config.method).alternates_per_batch(config):
        a = w
    return w * config.epochs + a * (config.epochs - config.warmup_epochs)


def check_run_dir(run: Path, resume: bool) -> Path:
    """The checkpoint path of ``run``, after checking the directory suits ``resume``.

    Raises:
        SearchError: nothing to resume, or a new search into a directory that holds one.
    """
    ckpt_path = run / "checkpoints" / "last.pt"
    if resume and not ckpt_path.is_file():
        raise SearchError(f"nothing to resume in {run}: no checkpoints/last.pt")
    if not resume and (run / "trajectory.jsonl").exists():
        raise SearchError(f"{run} already holds a search; use another directory or resume it")
    return ckpt_path


def search_network_space(space: SearchSpace, config: SearchConfig) -> SearchSpace:
    """The space whose networks the search trains: ``space`` with ``config.supernet_options`` on top.

    Raises:
        SpaceConfigError: an unknown or invalid option.
    """
    if not config.supernet_options:
        return space
    return get_space(space.name, **({k: thaw(v) for k, v in space.options} | dict(config.supernet_options)))


def build_supernet(space: SearchSpace, config: SearchConfig) -> Supernet:
    """The seeded supernet of ``space``, its backbone that of :func:`search_network_space`.

    Raises:
        SpaceConfigError: an unknown or invalid option; SearchError: options that change the searchable layers.
    """
    proxy = search_network_space(space, config)
    return Supernet(space, seed=config.seed, proxy=None if proxy is space else proxy, options=config.network_options())


def _supernet(space: SearchSpace, config: SearchConfig, env: DistEnv) -> Supernet:
    """The seeded supernet on the rank's device (global-batch BatchNorm under torchrun, channels-last if asked)."""
    supernet = build_supernet(space, config).to(env.device)
    if env.distributed:
        supernet = convert_batchnorm_for_ddp(supernet, env.device)
    if config.channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)
    return supernet


def _load_state(ckpt_path: Path, config: SearchConfig, states: dict[str, Any]) -> tuple[int, int]:
    """Load a search checkpoint into ``states`` (supernet, optimisers, schedules, the lambda controllers); returns
    (next epoch, next step).

    Raises:
        SearchError: the checkpoint was written by a search with other options.
    """
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise SearchError(f"{ckpt_path} was written by another version of edgenas's search; start a new run")
    mismatch = rundir.resume_mismatch(ckpt.get("config"), config)
    if mismatch is not None:
        raise SearchError(f"{ckpt_path} was written by a search with other options: {mismatch}; start a new run")
    for key, obj in states.items():
        if key == "lambdas":
            for controller, saved in zip(obj, ckpt["lambdas"], strict=True):
                controller.load_state_dict(saved)
        else:
            obj.load_state_dict(ckpt[key])
    return int(ckpt["epoch"]), int(ckpt["step"])


def transforms(data: ImageData, space: SearchSpace, config: SearchConfig) -> tuple[BatchTransform, BatchTransform]:
    """The weight phase's augmenting transform and the architecture phase's plain one (uint8 batch -> float)."""
    augmenting = BatchTransform(
        data.mean,
        data.std,
        augment=True,
        crop_padding=data.crop_padding,
        flip=data.flip,
        size=space.resolution,
        channels_last=config.channels_last,
    )
    plain = BatchTransform(
        data.mean, data.std, augment=False, size=space.resolution, channels_last=config.channels_last
    )
    return augmenting, plain


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def __getattr__(name: str) -> Any:
    """``refine`` moved to :mod:`edgenas.search.refine` (it builds on this module); the old name still resolves."""
    if name == "refine":
        from edgenas.search.refine import refine

        return refine
    raise AttributeError(f"module 'edgenas.search.engine' has no attribute {name!r}")

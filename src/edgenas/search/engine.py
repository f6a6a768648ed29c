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
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from edgenas._env import environment
from edgenas._io import write_text_atomic
from edgenas.errors import SearchError
from edgenas.predictors.base import Predictor
from edgenas.search.budget import FeasibleRange, LambdaController, check_feasible, check_space, feasible_range
from edgenas.search.strategy import architecture_step, derived_predictions, get_strategy
from edgenas.search.supernet import Supernet, SupernetOptions
from edgenas.spaces import ArchSpec, SearchSpace, get_space, save_specs, spec_to_dict
from edgenas.spaces.spec import thaw
from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.data import BatchTransform, ImageData, IndexedDataset, balanced_subset, stratified_split
from edgenas.train.distributed import DistEnv, all_reduce_sum, barrier, convert_batchnorm_for_ddp

CHECKPOINT_VERSION = 1
#: How weight and architecture steps alternate ("" = the strategy's default).
ALTERNATIONS = ("", "batch", "epoch")
#: Learning-rate schedules of either optimizer: a cosine decay to 0 over its steps, or a constant rate.
LR_SCHEDULES = ("cosine", "constant")
#: How a one-level strategy draws the paths of a weight step (SurgeNAS: ordered, without replacement).
PATH_SAMPLINGS = ("ordered", "independent")
#: Layers per row of the per-layer softmax figure (``alpha.png``).
PROBABILITY_PANELS_PER_ROW = 6
__all__ = ["SearchConfig", "SearchResult", "Target", "architecture_step", "prepare_targets", "refine", "search"]


@dataclass(frozen=True)
class Target:
    """One budget: a predictor (ms or mJ) and the value T the derived architecture must reach (None: no value to
    reach, the predictor only prices the paths, as SurgeNAS' ``beta * LAT`` does, and reports the derived arch)."""

    predictor: Predictor
    value: float | None

    @property
    def name(self) -> str:
        return self.predictor.meta.metric

    @property
    def unit(self) -> str:
        return self.predictor.meta.unit


@dataclass(frozen=True)
class SearchConfig:
    """Options of a search (defaults: thesis Sec 4.4.1 except the epoch counts, which a CPU cannot afford).

    Attributes:
        method: the strategy (``edgenas.search.strategy.list_strategies()``): ``lightnas`` (single path, learned
            lambda), ``fbnet`` (multi-path, fixed lambda), ...
        epochs / warmup_epochs: total epochs and the first epochs that train ``w`` only.
        batch_size: images per weight step.
        alpha_batch_size: images per architecture step (0 = batch_size); smaller batches give a short search more
            architecture steps, which the budget controller needs to settle.
        val_fraction: share of the training images held out for the architecture phase.
        train_subset: use a class-balanced subset of this many training images (0 = all).
        w_lr, w_momentum, w_weight_decay: SGD of the weights, cosine decay over all w steps.
        alpha_lr, alpha_weight_decay: Adam of the architecture logits; the lr decays to 0 with a cosine over the
            architecture steps (the authors' code halves it every 20 epochs), so the architecture settles.
        fair_warmup: during the warm-up epochs every weight step trains every op of every layer once (``K`` single
            paths of :meth:`~edgenas.search.supernet.Supernet.fair_paths` on the same batch, their CE summed as thesis
            Eq 3.16 sums its paths) instead of the strategy's one path: the authors' LightNAS code warms up so
            (``METHODS.md``), so parameter-free ops do not start ahead of convs trained on a fifth of the steps.
        w_lr_schedule, alpha_lr_schedule: ``cosine`` (decay to 0 over that optimizer's steps) or ``constant``
            (NAS-Bench-201's DARTS and GDAS keep the alpha lr constant).
        lambda_lr: eta_lambda; constraint: ``eq`` | ``le`` (LightNAS) or ``fixed`` (FBNet).
        lambda_p: proportional gain of the multiplier (beyond the thesis, see ``edgenas.search.budget``; 0 = Eq 4.11).
        lambda_init: lambda_0 (0 for LightNAS; the trade-off for FBNet).
        tau_start, tau_end: Gumbel-softmax temperature at the first and last search epoch.
        accuracy: keep CE in the architecture loss (False: LightNets-Worse).
        seed: seed of the supernet, the data order, the split and the Gumbel noise.
        device: ``cpu``, ``cuda`` or ``auto``.
        channels_last: channels-last activations (faster on CPUs).
        time_budget_s: wall-clock budget (s) of strategies that search by time (``random``); 0 = none.
        supernet_options: space options of the *search network* only (e.g. ``{"cells_per_stage": 1}`` for
            ``nb201``): a shallower proxy trained faster on a CPU, as DARTS searches 8 cells for a 20-cell net;
            the derived architecture, its predictions and the targets stay the space's. Empty = the space itself.
        alternate: ``batch`` (an architecture step on a held-out batch, then a weight step, per batch: DARTS'
            Algorithm 1) or ``epoch`` (an epoch of weight steps, then an epoch of architecture steps); empty = the
            strategy's default.
        w_grad_clip: clip the weights' gradient norm to this before each weight step (SurgeNAS: 5); 0 = no clip.
        beta: SurgeNAS' trade-off (Eq 3.16): each path's loss is ``CE + beta * PRED(path)`` for every target's
            predictor (per unit of the predictor: 1/ms, 1/mJ); 0 = accuracy only.
        identity_phi: phi_0 of SurgeNAS' identity mapping (Eq 3.6), decaying linearly to 0 at the last weight step;
            0 = none.
        path_sampling: SurgeNAS' paths per weight step: ``ordered`` (Alg. 1, without replacement: every op once)
            or ``independent`` (as many samples with replacement: the fairness ablation).
        w_nesterov: Nesterov momentum for the weights (False: plain momentum, as NNI and NAS-Bench-201's scripts).
        supernet_init, search_bn_affine, alpha_init_std, unsampled_gradient, identity_scope: how the search
            network is built (:class:`~edgenas.search.supernet.SupernetOptions`: ``init``, ``bn_affine``,
            ``alpha_init_std``, ``unsampled_gradient``, ``identity_scope``).
        derivation: how the architecture is read from alpha: ``argmax`` | ``nonzero`` (DARTS' rule: the strongest
            op that is not a zero op) | empty: the strategy's own (``Strategy.derivation``).
    """

    method: str = "lightnas"
    epochs: int = 90
    warmup_epochs: int = 10
    batch_size: int = 128
    alpha_batch_size: int = 0
    val_fraction: float = 0.2
    train_subset: int = 0
    w_lr: float = 0.1
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-5
    alpha_lr: float = 1e-3
    alpha_weight_decay: float = 1e-3
    lambda_lr: float = 5e-4
    lambda_p: float = 1000.0
    constraint: str = "eq"
    lambda_init: float = 0.0
    tau_start: float = 5.0
    tau_end: float = 0.1
    accuracy: bool = True
    seed: int = 0
    device: str = "auto"
    channels_last: bool = True
    time_budget_s: float = 0.0
    supernet_options: dict[str, Any] = field(default_factory=dict)
    alternate: str = ""
    w_lr_schedule: str = "cosine"
    alpha_lr_schedule: str = "cosine"
    fair_warmup: bool = False
    w_grad_clip: float = 0.0
    beta: float = 0.0
    identity_phi: float = 0.0
    path_sampling: str = "ordered"
    w_nesterov: bool = True
    supernet_init: str = "space"
    search_bn_affine: bool = True
    alpha_init_std: float = 0.0
    unsampled_gradient: bool = False
    identity_scope: str = "layer"
    derivation: str = ""

    def network_options(self) -> SupernetOptions:
        """The search network's build settings."""
        return SupernetOptions(
            init=self.supernet_init,
            bn_affine=self.search_bn_affine,
            alpha_init_std=self.alpha_init_std,
            unsampled_gradient=self.unsampled_gradient,
            identity_scope=self.identity_scope,
            derivation=self.derivation or get_strategy(self.method).derivation,
        )

    def check(self) -> None:
        get_strategy(self.method)  # raises for an unknown name, listing the registered ones
        self.network_options().check()
        if not 0 <= self.warmup_epochs < self.epochs:
            raise SearchError(f"warm-up epochs ({self.warmup_epochs}) must be fewer than epochs ({self.epochs})")
        if not 0 < self.val_fraction < 1:
            raise SearchError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1 or self.alpha_batch_size < 0 or self.tau_start <= 0 or self.tau_end <= 0:
            raise SearchError("batch sizes, tau_start and tau_end must be positive")
        if self.alternate not in ALTERNATIONS:
            raise SearchError(
                f"alternate must be one of {', '.join(repr(a) for a in ALTERNATIONS)}, got {self.alternate!r}"
            )
        if self.w_grad_clip < 0 or self.beta < 0 or self.identity_phi < 0:
            raise SearchError("w_grad_clip, beta and identity_phi must be >= 0")
        if self.path_sampling not in PATH_SAMPLINGS:
            raise SearchError(f"path_sampling must be one of {', '.join(PATH_SAMPLINGS)}, got {self.path_sampling!r}")
        for key in ("w_lr_schedule", "alpha_lr_schedule"):
            if getattr(self, key) not in LR_SCHEDULES:
                raise SearchError(f"{key} must be one of {', '.join(LR_SCHEDULES)}, got {getattr(self, key)!r}")

    @classmethod
    def for_space(cls, space: SearchSpace, **options: Any) -> SearchConfig:
        """The config of a search of ``space``: the space's measured loop (:attr:`SearchSpace.search_loop`, e.g.
        NNI's DARTS loop on NAS-Bench-201 cells) over the engine's defaults, then ``options`` (``None`` values are
        "not given" and keep the loop's or the engine's value).

        Raises:
            SearchError: an option that is not a SearchConfig field.
        """
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise SearchError(f"unknown search options: {', '.join(unknown)}")
        return cls(**(dict(space.search_loop) | given))

    def tau(self, epoch: int) -> float:
        """Temperature of ``epoch`` (0-based): tau_start during warm-up, exponential decay to tau_end after."""
        search_epochs = self.epochs - self.warmup_epochs
        progress = 0.0 if search_epochs <= 1 else max(0, epoch - self.warmup_epochs) / (search_epochs - 1)
        return self.tau_start * (self.tau_end / self.tau_start) ** min(1.0, progress)


@dataclass
class SearchResult:
    """What a search produced (also written to ``summary.json``)."""

    run: Path
    arch: ArchSpec
    summary: dict[str, Any]
    trajectory: list[dict[str, Any]] = field(default_factory=list)


StepCallback = Callable[[dict[str, Any]], None]


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


def same_config(saved: dict[str, Any] | None, config: SearchConfig) -> bool:
    """Whether a checkpoint's recorded options are ``config``'s; an option added since it was written counts as
    equal when ``config`` keeps its default (so runs of an older edgenas still resume)."""
    if not isinstance(saved, dict):
        return False
    current, defaults = asdict(config), asdict(SearchConfig())
    return set(saved) <= set(current) and all(saved.get(k, defaults[k]) == v for k, v in current.items())


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
        yield from _loader(data, indices, batch_size, seed + 1_000_003 * n)


def _loader(data: ImageData, indices: np.ndarray, batch_size: int, seed: int) -> DataLoader:
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
    ckpt_path = _check_run_dir(run, resume)
    barrier()  # every rank checked the directory before rank 0 creates files in it
    if env.is_main:
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)

    device = env.device
    supernet = _supernet(space, config, env)
    predictors = [t.predictor.to(device).eval().requires_grad_(False) for t in targets]
    controllers = [_controller(t, constraint, config, strategy.lambda_init(config)) for t in targets]

    w_idx, a_idx = search_split(data.train_labels, config)
    transforms = _transforms(data, search_network_space(space, config), config)
    per_batch = strategy.alternates_per_batch(config)
    w_opt, w_sched, a_opt, a_sched, a_batch = _optimizers(
        supernet, config, len(w_idx), len(a_idx), per_batch or strategy.one_level
    )
    states = {"supernet": supernet, "w_opt": w_opt, "w_sched": w_sched, "a_opt": a_opt, "a_sched": a_sched}
    states["lambdas"] = controllers

    if config.batch_size % env.world_size or (config.alpha_batch_size or config.batch_size) % env.world_size:
        raise SearchError(f"batch sizes must be divisible by the {env.world_size} processes")

    start_epoch, step = 0, 0
    if resume:
        start_epoch, step = _load_state(ckpt_path, config, states)
        if env.is_main:
            _truncate_trajectory(run / "trajectory.jsonl", step)
    elif env.is_main:
        _write_run_record(
            run, space, targets, data, config, ranges, (len(w_idx), len(a_idx)), device, world_size=env.world_size
        )

    steps = _Steps(
        supernet, strategy, config, _Ranks(env), predictors, controllers, states, run / "trajectory.jsonl", *transforms
    )
    steps.step, steps.on_step = step, on_step  # where a resumed search goes on; who watches the steps
    steps.total_w_steps = max(1, len(w_idx) // config.batch_size) * config.epochs
    weight_step, alpha_step = steps.weight_step, steps.alpha_step
    started = time.perf_counter()

    for epoch in range(start_epoch, config.epochs):
        tau = strategy.tau(config, epoch)
        searching = epoch >= config.warmup_epochs
        separate_alpha = searching and not strategy.one_level  # one level: alpha moves in the weight steps
        supernet.train()
        w_batches = _loader(data, w_idx, config.batch_size, config.seed * 7919 + 2 * epoch)
        a_batches = _cycled(data, a_idx, a_batch, config.seed * 7919 + 2 * epoch + 1) if separate_alpha else None
        for batch in w_batches:
            if per_batch and a_batches is not None:  # DARTS' order: alpha on a held-out batch, then w
                alpha_step(next(a_batches), epoch, tau)
            weight_step(batch, epoch, tau)
        if separate_alpha and not per_batch:
            for batch in _loader(data, a_idx, a_batch, config.seed * 7919 + 2 * epoch + 1):
                alpha_step(batch, epoch, tau)
        if not env.is_main:
            continue
        # GlobalBatchNorm2d has the keys of BatchNorm2d, so the supernet's state loads in either form
        state = {k: v.state_dict() for k, v in states.items() if k != "lambdas"}
        state["lambdas"] = [c.state_dict() for c in controllers]
        state.update(version=CHECKPOINT_VERSION, config=asdict(config), epoch=epoch + 1, step=steps.step)
        save_checkpoint(ckpt_path, state)

    arch = supernet.derived_spec()
    final = derived_predictions(supernet, predictors)
    barrier()
    if not env.is_main:
        return SearchResult(run, arch, {}, [])
    seconds = time.perf_counter() - started
    return _finish(run, supernet, targets, final, controllers, ranges, config, steps.step, seconds)


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


def _check_run_dir(run: Path, resume: bool) -> Path:
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
    if ckpt.get("version") != CHECKPOINT_VERSION or not same_config(ckpt.get("config"), config):
        raise SearchError(f"{ckpt_path} was written by a search with other options; start a new run")
    for key, obj in states.items():
        if key == "lambdas":
            for controller, saved in zip(obj, ckpt["lambdas"], strict=True):
                controller.load_state_dict(saved)
        else:
            obj.load_state_dict(ckpt[key])
    return int(ckpt["epoch"]), int(ckpt["step"])


def _transforms(data: ImageData, space: SearchSpace, config: SearchConfig) -> tuple[BatchTransform, BatchTransform]:
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


@dataclass(frozen=True)
class _Ranks:
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
class _Steps:
    """The two steps of a search and the trajectory they write: a weight step on a training batch, an architecture
    step on a held-out batch (the strategy's loss), each recorded with its learning rate."""

    supernet: Supernet
    strategy: Any  # edgenas.search.strategy.Strategy
    config: SearchConfig
    ranks: _Ranks
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


def _lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The lr multiplier of step k under ``schedule`` (:data:`LR_SCHEDULES`) over ``total_steps`` steps."""
    if schedule == "constant":
        return lambda k: 1.0
    return lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps))


def _optimizers(
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
    w_sched = torch.optim.lr_scheduler.LambdaLR(w_opt, _lr_factor(config.w_lr_schedule, total_w_steps))
    a_opt = torch.optim.Adam(
        [supernet.alpha], lr=config.alpha_lr, betas=(0.5, 0.999), weight_decay=config.alpha_weight_decay
    )
    a_batch = config.alpha_batch_size or config.batch_size
    a_steps_per_epoch = w_steps_per_epoch if per_batch else max(1, alpha_images // a_batch)
    total_a_steps = max(1, a_steps_per_epoch * (config.epochs - config.warmup_epochs))
    a_sched = torch.optim.lr_scheduler.LambdaLR(a_opt, _lr_factor(config.alpha_lr_schedule, total_a_steps))
    return w_opt, w_sched, a_opt, a_sched, a_batch


def _write_run_record(
    run: Path,
    space: SearchSpace,
    targets: Sequence[Target],
    data: ImageData,
    config: SearchConfig,
    ranges: dict[str, FeasibleRange],
    split: tuple[int, int],
    device: torch.device,
    *,
    world_size: int = 1,
) -> None:
    """``config.json`` (options, space, targets, feasible ranges, data and split sizes, processes) and ``env.json``."""
    record = {
        "config": asdict(config),
        "world_size": world_size,
        "space": space.name,
        "space_options": {k: thaw(v) for k, v in space.options},
        "targets": [
            {"metric": t.name, "unit": t.unit, "value": t.value, "predictor": t.predictor.meta.kind} for t in targets
        ],
        "feasible": {
            k: {"low": r.low, "high": r.high, "low_arch": str(r.low_spec), "high_arch": str(r.high_spec)}
            for k, r in ranges.items()
        },
        "data": data.describe() | {"w_split": split[0], "alpha_split": split[1]},
    }
    write_text_atomic(run / "config.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    environment_record = {"seed": config.seed, **environment(device)}
    write_text_atomic(run / "env.json", json.dumps(environment_record, indent=2, sort_keys=True) + "\n")


def _finish(
    run: Path,
    supernet: Supernet,
    targets: Sequence[Target],
    final: list[float],
    controllers: Sequence[LambdaController],
    ranges: dict[str, FeasibleRange],
    config: SearchConfig,
    steps: int,
    seconds: float,
) -> SearchResult:
    """Write ``arch.json`` (the supernet's derived architecture), ``summary.json`` (per target: predicted value,
    error, lambda, range; the per-op update counts of a strategy that records its paths) and the plots."""
    arch, entropy = supernet.derived_spec(), supernet.entropy()
    save_specs(run / "arch.json", [arch])
    summary = {
        "method": config.method,
        "arch": str(arch),
        "arch_spec": spec_to_dict(arch),
        "targets": [
            {
                "metric": t.name,
                "unit": t.unit,
                "target": t.value,
                "predicted": v,
                "predicted_error": None if t.value is None else v / t.value - 1.0,
                "lambda": c.value,
                "feasible_low": ranges[t.name].low,
                "feasible_high": ranges[t.name].high,
            }
            for t, v, c in zip(targets, final, controllers, strict=True)
        ],
        "epochs": config.epochs,
        "steps": steps,
        "wall_s_this_session": seconds,
        "entropy": entropy,
        # the rule ("argmax" | "nonzero"), or the space's most likely valid arch when the rule's is not a network
        "derivation": supernet.derivation
        if arch == supernet.rule_spec()
        else f"most likely valid ({supernet.derivation} not a network)",
    }
    trajectory = read_trajectory(run / "trajectory.jsonl")
    if get_strategy(config.method).records_probabilities:
        summary["update_counts"] = update_counts(trajectory, supernet.space.num_layers, supernet.space.num_ops)
        plot_probabilities(trajectory, supernet.space, run / "alpha.png")
    write_text_atomic(run / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    plot_trajectory(trajectory, targets, run / "trajectory.png")
    return SearchResult(run, arch, summary, trajectory)


def update_counts(trajectory: list[dict[str, Any]], layers: int, ops: int) -> list[list[int]]:
    """How many times each (layer, op) ran in the weight steps of ``trajectory`` (its records' ``paths``):
    ``layers x ops`` counts, the fairness of the search's training made visible."""
    counts = np.zeros((layers, ops), dtype=np.int64)
    for record in trajectory:
        for path in record.get("paths") or []:
            counts[np.arange(layers), path] += 1
    return counts.tolist()


def plot_probabilities(trajectory: list[dict[str, Any]], space: SearchSpace, path: Path) -> None:
    """The softmax of alpha per layer vs weight step, one panel per layer (thesis Fig 3.13), from the records'
    ``probs``; nothing is drawn when no record has them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = [r for r in trajectory if r.get("probs") is not None]
    if not records:
        return
    probs, steps = np.asarray([r["probs"] for r in records]), [r["step"] for r in records]
    columns = min(PROBABILITY_PANELS_PER_ROW, space.num_layers)
    rows = math.ceil(space.num_layers / columns)
    fig = Figure(figsize=(2.6 * columns, 2.0 * rows + 0.6))
    FigureCanvasAgg(fig)  # an explicit backend for this figure: no global matplotlib state
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    names = space.layer_names()
    for layer, ax in enumerate(axes.flat):
        if layer >= space.num_layers:
            ax.set_visible(False)
            continue
        ax.stackplot(steps, probs[:, layer, :].T, labels=space.op_names)
        ax.set_title(names[layer], fontsize=7)
        ax.set_ylim(0, 1)
    axes[0][0].legend(loc="upper left", fontsize=5, ncol=2)
    fig.supxlabel("step")
    fig.supylabel("softmax(alpha)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def _validation_losses(
    supernet: Supernet, data: ImageData, space: SearchSpace, config: SearchConfig, first_step: int
) -> Iterator[Callable[[], torch.Tensor]]:
    """Endless CE closures over the search's architecture half (plain transform), one batch each, in a seeded order
    that changes every pass over the half."""
    _, a_idx = search_split(data.train_labels, config)
    _, to_float = _transforms(data, search_network_space(space, config), config)
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
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
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
    write_text_atomic(run / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def update_summary(run: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run/summary.json`` (atomically) and return the whole summary."""
    path = Path(run) / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary.update(fields)
    write_text_atomic(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def read_trajectory(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``trajectory.jsonl``."""
    lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
    return [json.loads(line) for line in lines if line.strip()]


def _truncate_trajectory(path: Path, step: int) -> None:
    """Drop records at or after ``step`` (written after the checkpoint a resumed search restarts from)."""
    if path.is_file():
        keep = [r for r in read_trajectory(path) if r["step"] < step]
        write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))


def plot_trajectory(trajectory: list[dict[str, Any]], targets: Sequence[Target], path: Path) -> None:
    """Predicted value of the derived architecture vs step with the target line (thesis Fig 4.12); with no target,
    the mean entropy of the architecture distribution vs step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * max(1, len(targets)), 3.6))
    FigureCanvasAgg(fig)  # an explicit backend for this figure: no global matplotlib state
    axes = fig.subplots(1, max(1, len(targets)), squeeze=False)
    steps = [r["step"] for r in trajectory]
    if not targets:
        axes[0][0].plot(steps, [r["entropy"] for r in trajectory], lw=1)
        axes[0][0].set_xlabel("step")
        axes[0][0].set_ylabel("mean entropy of P (nats)")
    for i, (t, ax) in enumerate(zip(targets, axes[0], strict=False)):  # no target: the entropy plot above
        ax.plot(steps, [r["derived"][i] for r in trajectory], lw=1, label="derived (argmax) arch")
        if t.value is not None:
            ax.axhline(t.value, color="k", ls="--", lw=1, label=f"target {t.value:g} {t.unit}")
        ax.set_xlabel("step")
        ax.set_ylabel(f"predicted {t.name} ({t.unit})")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)

"""What a supernet search is asked to do: its options (:class:`SearchConfig`), its budgets (:class:`Target`) and
what it returns (:class:`SearchResult`), shared by the engine, the strategies, the refinement and the callers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgenas.errors import SearchError
from edgenas.predictors.base import Predictor
from edgenas.rundir import same_options
from edgenas.search.strategy import get_strategy
from edgenas.search.supernet import SupernetOptions
from edgenas.spaces import ArchSpec, SearchSpace

#: How weight and architecture steps alternate ("" = the strategy's default).
ALTERNATIONS = ("", "batch", "epoch")
#: Learning-rate schedules of either optimizer: a cosine decay to 0 over its steps, or a constant rate.
LR_SCHEDULES = ("cosine", "constant")
#: How a one-level strategy draws the paths of a weight step (SurgeNAS: ordered, without replacement).
PATH_SAMPLINGS = ("ordered", "independent")
#: Where a search's targets act (:attr:`SearchConfig.budget_term`).
BUDGET_TERMS = ("loss", "landing")


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
        budget_term: where the targets act: ``loss`` (thesis Eq 4.10: ``lambda (PRED / T - 1)`` in alpha's loss,
            lambda learned) or ``landing`` (beyond the thesis: alpha searches for accuracy alone, the multipliers
            stay 0, and the target is met afterwards by a closed-loop landing that walks from the searched arch to
            the arch alpha prefers at T; one search then serves any T). Targets are still checked for feasibility
            and reported. See ``docs/referee.md`` for what each measured.
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
    budget_term: str = "loss"

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
        if self.budget_term not in BUDGET_TERMS:
            raise SearchError(f"budget_term must be one of {', '.join(BUDGET_TERMS)}, got {self.budget_term!r}")
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


def same_config(saved: dict[str, Any] | None, config: SearchConfig) -> bool:
    """Whether a checkpoint's recorded options are ``config``'s; an option added since it was written counts as
    equal when ``config`` keeps its default (so runs of an older edgenas still resume; see
    :func:`edgenas.rundir.same_options`)."""
    return same_options(saved, config)

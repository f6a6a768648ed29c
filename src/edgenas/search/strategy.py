"""Search strategies: what differs between supernet searches, on top of the shared engine (:mod:`.engine`).

The engine owns what every supernet search shares (the train/validation split and loaders, the ``w`` phase,
distributed plumbing, resume, the trajectory, the run directory and its plot). A strategy owns only what differs:

- how a forward pass picks its path (:meth:`Strategy.sample`: one hard path, or a soft mix of every op);
- the temperature schedule (:meth:`Strategy.tau`);
- how the multipliers of the budget terms behave (:meth:`Strategy.constraint`, :meth:`Strategy.lambda_init`);
- the architecture step (:meth:`Strategy.alpha_step`: the loss terms and the update of alpha and lambda);
- for a one-level strategy (:attr:`Strategy.one_level`, SurgeNAS), the paths of a weight step
  (:meth:`Strategy.weight_paths`), the loss each adds (:meth:`Strategy.path_penalty`) and the identity mapping's
  weight (:meth:`Strategy.identity_weight`): alpha then moves with w on the same batch and there is no
  architecture phase.

Strategies are registered by name like the spaces (:func:`register_strategy`, :func:`get_strategy`), so a new one
is one module that subclasses :class:`Strategy` and registers an instance; ``SearchConfig.method`` names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from edgenas.errors import SearchError
from edgenas.predictors.base import Predictor
from edgenas.search.budget import LambdaController
from edgenas.search.supernet import Supernet

if TYPE_CHECKING:
    from pathlib import Path

    from edgenas.search.config import SearchConfig, Target
    from edgenas.spaces import ArchSpec, SearchSpace
    from edgenas.train.data import ImageData

GradientReducer = Callable[[Sequence[torch.nn.Parameter]], None]

_STRATEGIES: dict[str, Strategy] = {}


class Strategy:
    """The parts of a supernet search that differ between methods; the defaults are LightNAS' (thesis Ch 4)."""

    #: Registered name (``SearchConfig.method``).
    name: str = ""
    #: One hard straight-through path per pass (True), or every allowed op mixed by its soft weight (False).
    single_path: bool = True
    #: Default alternation of the weight and architecture steps (see :meth:`alternates_per_batch`).
    per_batch: bool = False
    #: Whether :meth:`run` is the supernet engine (step records for a progress bar; resume from its checkpoint).
    uses_supernet: bool = True
    #: One-level optimisation (thesis Eq 3.4-3.5): after the warm-up, every weight step also steps alpha with the
    #: gradient of the same training batch; no images are held out and there is no architecture phase.
    one_level: bool = False
    #: Whether each weight step records the per-layer softmax of alpha (the thesis' Fig 3.13 view) and every path.
    records_probabilities: bool = False
    #: How the method reads its architecture from alpha when ``SearchConfig.derivation`` is empty (``argmax`` |
    #: ``nonzero``: :meth:`~edgenas.spaces.SearchSpace.derive`).
    derivation: str = "argmax"
    #: :class:`~edgenas.search.engine.SearchConfig` values that belong to the method itself (not to a protocol's
    #: optimiser budget), applied by a harness that configures every strategy alike (the NAS-Bench-201 referee).
    method_settings: Mapping[str, Any] = MappingProxyType({})

    def weight_paths(
        self, supernet: Supernet, config: SearchConfig, step: int, tau: float, *, fair: bool
    ) -> Iterator[torch.Tensor]:
        """Set, one after the other, the paths whose losses one weight step accumulates, yielding each path's
        ``L x K`` weights: the strategy's one path, or with ``fair`` every op of every layer once
        (:meth:`~edgenas.search.supernet.Supernet.fair_paths`, fixed paths)."""
        if not fair:
            yield self.sample(supernet, step, tau)
            return
        for path in supernet.fair_paths(step):
            yield supernet.fix_path(supernet.space.make_spec(path))

    def path_penalty(
        self, weights: torch.Tensor, predictors: Sequence[Predictor], config: SearchConfig
    ) -> torch.Tensor | None:
        """The budget term a one-level weight step adds to one path's CE (None: none)."""
        return None

    def identity_weight(self, config: SearchConfig, progress: float) -> float:
        """phi of the identity mapping at ``progress`` (0 at the first weight step, 1 at the last); 0: none."""
        return 0.0

    def sample(self, supernet: Supernet, step: int, tau: float) -> torch.Tensor:
        """Set the path of the next forward pass; returns the ``L x K`` mixing weights (differentiable in alpha)."""
        if self.single_path:
            return supernet.sample_single_path(step, tau)
        return supernet.sample_multi_path(step, tau)

    def tau(self, config: SearchConfig, epoch: int) -> float:
        """Gumbel-softmax temperature of ``epoch`` (0-based)."""
        return config.tau(epoch)

    def constraint(self, config: SearchConfig) -> str:
        """How the budget multipliers move: ``eq``/``le`` (learned, Eq 4.11) or ``fixed``."""
        return config.constraint

    def alternates_per_batch(self, config: SearchConfig) -> bool:
        """Whether the search alternates an architecture step and a weight step per batch (DARTS' Algorithm 1), or
        runs an epoch of weight steps and then an epoch of architecture steps (our reading of thesis Sec 4.4.1).
        ``config.alternate`` decides when set; the default is the strategy's :attr:`per_batch`."""
        return self.per_batch if config.alternate == "" else config.alternate == "batch"

    def lambda_init(self, config: SearchConfig) -> float:
        """lambda_0 of every budget term."""
        return 0.0

    def alpha_step(
        self,
        supernet: Supernet,
        predictors: Sequence[Predictor],
        controllers: Sequence[LambdaController],
        optimizer: torch.optim.Optimizer,
        step: int,
        tau: float,
        cross_entropy: Callable[[], torch.Tensor] | None,
        reduce_gradients: GradientReducer | None = None,
    ) -> dict[str, Any]:
        """One architecture step on a held-out batch (``cross_entropy`` computes its CE, None: no accuracy term).

        Default: :func:`architecture_step` with this strategy's path sampling.
        """
        return architecture_step(
            supernet,
            predictors,
            controllers,
            optimizer,
            step,
            tau,
            cross_entropy,
            sample=lambda: self.sample(supernet, step, tau),
            reduce_gradients=reduce_gradients,
        )

    def run(
        self,
        space: SearchSpace,
        targets: Sequence[Target],
        data: ImageData,
        config: SearchConfig,
        run: Path,
        *,
        resume: bool = False,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[ArchSpec, dict[str, Any]]:
        """Search and return (derived architecture, summary). Default: the supernet engine
        (:func:`edgenas.search.engine.search`, ``resume`` and ``on_step`` passed on); a strategy that does not ride
        the supernet overrides it (and sets :attr:`uses_supernet` False)."""
        from edgenas.search.engine import search

        result = search(space, targets, data, config, run, resume=resume, on_step=on_step)
        return result.arch, result.summary


def register_strategy(strategy: Strategy) -> Strategy:
    """Register ``strategy`` under its name.

    Raises:
        SearchError: the name is empty or taken.
    """
    if not strategy.name or strategy.name in _STRATEGIES:
        raise SearchError(f"a strategy needs a new, non-empty name (got {strategy.name!r})")
    _STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``.

    Raises:
        SearchError: no such strategy (the message lists them).
    """
    if name not in _STRATEGIES:
        raise SearchError(f"unknown search strategy {name!r}; strategies: {', '.join(list_strategies())}")
    return _STRATEGIES[name]


def list_strategies() -> list[str]:
    """The registered strategy names, sorted."""
    return sorted(_STRATEGIES)


def derived_predictions(supernet: Supernet, predictors: Sequence[Predictor]) -> list[float]:
    """Each predictor's value (ms, mJ) for the derived (argmax) architecture."""
    hot = supernet.derived_one_hot().to(supernet.alpha.device)
    with torch.no_grad():
        return [float(p(hot[None])[0]) for p in predictors]


def architecture_step(
    supernet: Supernet,
    predictors: Sequence[Predictor],
    controllers: Sequence[LambdaController],
    optimizer: torch.optim.Optimizer,
    step: int,
    tau: float,
    cross_entropy: Callable[[], torch.Tensor] | None,
    *,
    single_path: bool = True,
    sample: Callable[[], torch.Tensor] | None = None,
    reduce_gradients: GradientReducer | None = None,
) -> dict[str, Any]:
    """One alpha/lambda step: sample a path, ``loss = CE + sum lambda_t (PRED_t(path) / T_t - 1)`` (thesis Eq 4.10),
    Adam on alpha (the weights' gradients are dropped), then lambda ascent with the derived architecture's predictions.

    ``sample`` sets the path (default: a single or multi path by ``single_path``). Returns the trajectory fields of
    the step (tau, ce, loss, lambdas, sampled and derived predictions, entropy).
    """
    before = derived_predictions(supernet, predictors)
    if sample is not None:
        weights = sample()
    else:
        weights = supernet.sample_single_path(step, tau) if single_path else supernet.sample_multi_path(step, tau)
    predicted = [p(weights[None])[0] for p in predictors]
    loss = sum(c.penalty(v, d) for c, v, d in zip(controllers, predicted, before, strict=True))
    ce = None
    if cross_entropy is not None:
        ce_t = cross_entropy()
        loss = loss + ce_t
        ce = float(ce_t.detach())
    optimizer.zero_grad(set_to_none=True)
    if torch.is_tensor(loss) and loss.requires_grad:
        loss.backward()
        for p in supernet.weight_parameters():  # the architecture phase must not move w
            p.grad = None
        if reduce_gradients is not None:
            reduce_gradients([supernet.alpha])
        optimizer.step()
    derived = derived_predictions(supernet, predictors)
    lambdas = [c.update(v) for c, v in zip(controllers, derived, strict=True)]
    return {
        "tau": tau,
        "ce": ce,
        "loss": float(loss.detach()) if torch.is_tensor(loss) else float(loss),
        "lambda": lambdas,
        "sampled": [float(v.detach()) for v in predicted],
        "derived": derived,
        "entropy": supernet.entropy(),
    }

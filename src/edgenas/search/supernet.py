"""The weight-sharing supernet every search method rides on (LightNAS, FBNet, SurgeNAS).

Each searchable layer of a space becomes a :class:`ChoiceLayer` holding one module per allowed op; the
architecture logits ``alpha`` (``L x K``, disallowed ops masked to -inf) live on the :class:`Supernet`. A forward
pass runs under *mixing weights* ``L x K`` set by one of:

* :meth:`Supernet.sample_single_path` — Gumbel-softmax (thesis Eq 4.7) with a hard one-hot forward (Eq 4.9) and a
  straight-through backward: only the sampled op of each layer runs (Eq 4.8), multiplied by its weight, whose
  value is exactly 1 but whose gradient reaches every logit of the layer through the soft sample.
* :meth:`Supernet.sample_multi_path` — soft Gumbel-softmax weights, every allowed op runs (FBNet baseline).
* :meth:`Supernet.sample_softmax` — ``softmax(alpha)`` weights without noise, every allowed op runs (DARTS).
* :meth:`Supernet.fix_path` — a given architecture (no gradient to alpha), e.g. to train or evaluate one path.
* :meth:`Supernet.ordered_paths` — SurgeNAS' ordered differentiable sampling (thesis Alg. 1): ``|O|`` single
  straight-through paths per step, drawn without replacement per layer, set one after the other.

``PathState.phi`` adds SurgeNAS' identity mapping (``+ phi * x`` where a layer keeps its input's shape) to whatever
path runs; it is 0 except inside a SurgeNAS weight step.

The Gumbel noise is drawn from a generator seeded by ``(seed, step)``, so every rank of a distributed search
samples the same path without communication, and a resumed search samples the paths it would have sampled.
Standard Gumbel-softmax perturbs the logits (``alpha + G``); thesis Eq 4.7 writes the probabilities ``P + G``,
which would not sample from ``P`` — we follow Jang et al. 2017, the paper the thesis cites.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgenas._random import seeded_torch
from edgenas.errors import SearchError
from edgenas.spaces import DERIVATION_RULES, ArchSpec, SearchSpace
from edgenas.spaces.nb201 import Zero  # noqa: F401  (re-exported: the supernet's ``none`` op)

#: Offset of the fair paths' random stream from the Gumbel noise's (both are functions of seed and step).
FAIR_STREAM = 7_777_777
#: Offset of the ordered paths' Gumbel stream, and the most paths one step may draw (``|O|`` of any space here).
ORDERED_STREAM = 3_333_333
ORDERED_DRAWS = 64


@dataclass
class PathState:
    """What the choice layers read during a forward pass (a plain object, not a module, so layers can share it).

    Attributes:
        weights: ``L x K`` mixing weights (hard straight-through one-hot or soft), or ``None`` before sampling.
        chosen: the op index per layer for single-path passes, ``None`` in multi-path mode.
        phi: weight of SurgeNAS' identity mapping (thesis Eq 3.6): every module of the identity scope (each choice
            layer, or each searchable block of the space, :class:`SupernetOptions`) whose output has its input's
            shape adds ``phi * x`` to it (0: none, the network the derived architecture deploys).
    """

    weights: torch.Tensor | None = None
    chosen: list[int] | None = None
    phi: float = 0.0
    unsampled_scalars: bool = False


#: Search-network initialisations: the space's own (He-normal convs, as the deployed network is built) or PyTorch's
#: default ``reset_parameters`` (what NNI's NAS-Bench-201 space, NAS-Bench-201's search model and DrNAS keep).
SUPERNET_INITS = ("space", "torch")
#: Where SurgeNAS' identity mapping ``phi * x`` is added: to every choice layer (Eq 3.6 as written for a layer-wise
#: chain; on NAS-Bench-201 every edge) or once per searchable block of the space (a NAS-Bench-201 cell; the LightNAS
#: authors' code adds it once per searchable block; in a layer-wise space a block is its layer).
IDENTITY_SCOPES = ("layer", "block")
#: Offset of alpha's initial noise stream from the other seeded streams.
ALPHA_INIT_STREAM = 5_555_555


@dataclass(frozen=True)
class SupernetOptions:
    """How the search network is built, beyond its space (the settings the peers' search loops differ in).

    Attributes:
        init: ``space`` (the space's initialisation) or ``torch`` (PyTorch's default for convs, BN and linear).
        bn_affine: BatchNorm inside the choice layers learns a scale and shift (False: affine-free, as the search
            cells of NAS-Bench-201, DrNAS and the LightNAS authors' code; ops outside choice layers keep theirs).
        alpha_init_std: alpha starts at ``alpha_init_std * N(0, 1)`` (seeded; 0 = exact zeros, whose argmax ties
            pick each layer's first op, ``none`` in NAS-Bench-201). Every peer uses 1e-3.
        unsampled_gradient: in a single-path pass, add each unsampled op's straight-through weight (value 0) to the
            layer's output as a scalar, so each unsampled weight gets the summed gradient of the layer's output as
            well (GDAS' search cells, NAS-Bench-201's ``search_cells.py``); False: alpha's gradient comes through the
            sampled op's weight alone (and the softmax couples it to the other logits).
        identity_scope: where SurgeNAS' identity mapping is added (:data:`IDENTITY_SCOPES`).
        derivation: how :meth:`Supernet.derived_spec` reads alpha (``argmax`` | ``nonzero``, see
            :meth:`~edgenas.spaces.SearchSpace.derive`).
    """

    init: str = "space"
    bn_affine: bool = True
    alpha_init_std: float = 0.0
    unsampled_gradient: bool = False
    identity_scope: str = "layer"
    derivation: str = "argmax"

    def check(self) -> None:
        if self.identity_scope not in IDENTITY_SCOPES:
            raise SearchError(
                f"identity scope must be one of {', '.join(IDENTITY_SCOPES)}, got {self.identity_scope!r}"
            )
        if self.init not in SUPERNET_INITS:
            raise SearchError(f"supernet init must be one of {', '.join(SUPERNET_INITS)}, got {self.init!r}")
        if not 0 <= self.alpha_init_std < 1:
            raise SearchError(f"alpha_init_std must be in [0, 1), got {self.alpha_init_std}")
        if self.derivation not in DERIVATION_RULES:
            raise SearchError(f"derivation must be one of {', '.join(DERIVATION_RULES)}, got {self.derivation!r}")


class _ScaledByOne(torch.autograd.Function):
    """``out * weight`` for a straight-through weight whose value is 1: the forward returns ``out`` itself (a view),
    the backward gives ``out`` the incoming gradient and ``weight`` ``sum(grad * out)``. A plain product would save a
    second copy of every layer's output for the backward (the product, which the next layer saves, and ``out``),
    raising a single path's activation memory above the standalone network's."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(out)
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (out,) = ctx.saved_tensors
        return grad, (grad * out).sum().reshape(())


class ChoiceLayer(nn.Module):
    """One searchable layer: the allowed candidate ops of layer ``layer`` and the shared :class:`PathState`."""

    def __init__(self, layer: int, candidates: dict[int, nn.Module], state: PathState) -> None:
        super().__init__()
        self.layer = layer
        self.candidates = nn.ModuleDict({str(k): m for k, m in candidates.items()})
        self._state = state  # not a module attribute: a plain object shared by all layers

    @property
    def allowed(self) -> list[int]:
        return [int(k) for k in self.candidates]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        if state.weights is None:
            raise SearchError("the supernet has no path: call sample_single_path, sample_multi_path or fix_path")
        weights = state.weights[self.layer]
        if state.chosen is not None:
            k = state.chosen[self.layer]
            # the weight is 1 in the forward pass; it carries the straight-through gradient to alpha
            out = _ScaledByOne.apply(self.candidates[str(k)](x), weights[k].to(x.dtype))
            if state.unsampled_scalars:  # GDAS: + w_j (value 0) for every other op j, so each w_j gets a gradient
                others = [weights[j] for j in self.allowed if j != k]
                out = out + torch.stack(others).sum().to(x.dtype) if others else out
        else:
            out = None
            for key, op in self.candidates.items():
                term = op(x) * weights[int(key)].to(x.dtype)
                out = term if out is None else out + term
        return out


def _add_identity(state: PathState) -> Any:
    """A forward hook adding SurgeNAS' identity mapping ``phi * x`` to a module's output of its input's shape.
    On a choice layer it is Eq 3.6 as written: ``sum_k P_k (O_k(x) + phi x) = sum_k P_k O_k(x) + phi x``, as the
    weights of a layer sum to 1."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor | None:
        x = inputs[0]
        if state.phi and out.shape == x.shape:
            return out + state.phi * x
        return None

    return hook


def _check_proxy(space: SearchSpace, proxy: SearchSpace) -> SearchSpace:
    same = (
        proxy.name == space.name
        and proxy.layer_names() == space.layer_names()
        and proxy.op_names == space.op_names
        and bool(torch.equal(proxy.mask(), space.mask()))
    )
    if not same:
        raise SearchError(
            f"the search network's options change the searchable layers or ops of {space.name}: only options that "
            "keep them (depth of repeated cells, width, resolution) can differ from the deployed network"
        )
    return proxy


def _reset_to_torch_defaults(net: nn.Module) -> None:
    """PyTorch's own initialisation of every conv, linear and BatchNorm layer (draws from the global RNG: call it
    inside :func:`~edgenas._random.seeded_torch`)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()


def _drop_choice_bn_affine(net: nn.Module) -> None:
    """Make every BatchNorm inside a choice layer affine-free (no learned scale or shift)."""
    for layer in net.modules():
        if isinstance(layer, ChoiceLayer):
            for bn in layer.modules():
                if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.affine:
                    bn.affine, bn.weight, bn.bias = False, None, None


class Supernet(nn.Module):
    """A space's network with every searchable layer a :class:`ChoiceLayer`, and the architecture logits.

    Args:
        space: the search space (the derived architectures, alpha's shape and the masks are its).
        seed: seed of the Gumbel noise (combined with the step) and of the weight initialisation.
        proxy: the same space with other options (e.g. ``nb201`` with fewer cells per stage) whose backbone the
            search trains instead of ``space``'s: a shallower search network than the deployed one, as DARTS searches
            8 cells for a 20-cell network. It must have the same searchable layers and ops.
        options: initialisation, BatchNorm and alpha settings (:class:`SupernetOptions`; default: the space's
            initialisation, affine BatchNorm, alpha at exact zeros).

    Raises:
        SearchError: ``proxy`` is another space or has other searchable layers or ops.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        proxy: SearchSpace | None = None,
        options: SupernetOptions | None = None,
    ) -> None:
        super().__init__()
        options = options or SupernetOptions()
        options.check()
        self.space = space
        self.seed = seed
        self.derivation = options.derivation
        self.state = PathState(unsampled_scalars=options.unsampled_gradient)
        backbone = space if proxy is None else _check_proxy(space, proxy)
        with seeded_torch(seed):  # a seeded initialisation that leaves the caller's RNG as it was
            self.net = backbone.supernet_backbone(lambda layer, candidates: ChoiceLayer(layer, candidates, self.state))
            if options.init == "torch":
                _reset_to_torch_defaults(self.net)
        if not options.bn_affine:
            _drop_choice_bn_affine(self.net)
        scope = self.space.identity_blocks(self.net) if options.identity_scope == "block" else None
        for module in scope or [m for m in self.net.modules() if isinstance(m, ChoiceLayer)]:
            module.register_forward_hook(_add_identity(self.state))
        mask = space.mask()  # L x K, True where allowed
        self.register_buffer("mask", mask, persistent=False)
        generator = torch.Generator().manual_seed(ALPHA_INIT_STREAM + seed)
        noise = torch.randn(space.num_layers, space.num_ops, generator=generator, dtype=torch.float64)
        self.alpha = nn.Parameter((options.alpha_init_std * noise).float())

    # -- parameters -----------------------------------------------------------------------------------------------
    def weight_parameters(self) -> list[nn.Parameter]:
        """The network weights ``w`` (everything but ``alpha``)."""
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def masked_logits(self) -> torch.Tensor:
        return self.alpha.masked_fill(~self.mask, -math.inf)

    def probabilities(self) -> torch.Tensor:
        """``P = softmax(alpha)`` per layer (thesis Eq 4.6), zero on disallowed ops."""
        return torch.softmax(self.masked_logits(), dim=-1)

    def entropy(self) -> float:
        """Mean per-layer entropy of ``P`` (nats): log K at the start, 0 once the search has decided."""
        p = self.probabilities().detach()
        return float(-(p * torch.log(p.clamp_min(1e-30))).sum(-1).mean())

    # -- paths ----------------------------------------------------------------------------------------------------
    def _gumbel(self, step: int, draw: int | None = None) -> torch.Tensor:
        """Gumbel(0, 1) noise of ``step`` (``draw``: the i-th of the ordered paths of the step, its own stream)."""
        key = self.seed * 1_000_003 + step
        generator = torch.Generator().manual_seed(key if draw is None else ORDERED_STREAM + key * ORDERED_DRAWS + draw)
        u = torch.rand(self.alpha.shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        return (-torch.log(-torch.log(u))).to(self.alpha.device, self.alpha.dtype)

    def sample_single_path(self, step: int, tau: float) -> torch.Tensor:
        """Sample one path (hard, straight-through) and set it; returns the ``L x K`` weights (differentiable)."""
        soft = torch.softmax((self.masked_logits() + self._gumbel(step)) / tau, dim=-1)
        index = soft.argmax(dim=-1)
        hard = F.one_hot(index, soft.shape[-1]).to(soft.dtype)
        weights = hard - soft.detach() + soft
        self.state.weights, self.state.chosen = weights, index.tolist()
        return weights

    def sample_multi_path(self, step: int, tau: float) -> torch.Tensor:
        """Soft Gumbel-softmax weights over every allowed op (FBNet); returns them (differentiable)."""
        weights = torch.softmax((self.masked_logits() + self._gumbel(step)) / tau, dim=-1)
        self.state.weights, self.state.chosen = weights, None
        return weights

    def sample_softmax(self) -> torch.Tensor:
        """DARTS' mixing: every allowed op weighted by ``softmax(alpha)``, no noise; returns the weights."""
        weights = self.probabilities()
        self.state.weights, self.state.chosen = weights, None
        return weights

    def fix_path(self, spec: ArchSpec) -> torch.Tensor:
        """Run the architecture ``spec`` (weights without gradient to alpha)."""
        spec = self.space.check_spec(spec)
        weights = F.one_hot(torch.tensor(spec.choices), self.space.num_ops).to(self.alpha)
        self.state.weights, self.state.chosen = weights, list(spec.choices)
        return weights

    def fair_paths(self, step: int) -> list[list[int]]:
        """``K`` single paths (``K`` = the most ops a layer allows) that together run every allowed op of every layer
        once: the space's ordered sample (:meth:`~edgenas.spaces.SearchSpace.sample` with ``ordered``, thesis Alg. 1
        at uniform probabilities) seeded by ``(seed, step)``; a layer with fewer ops fills its remaining paths with
        random draws of its own. Returns ``K`` lists of ``L`` op indices."""
        count = int(self.mask.sum(-1).max())
        specs = self.space.sample(seed=FAIR_STREAM + self.seed * 1_000_003 + step, n=count, ordered=True)
        return [list(spec.choices) for spec in specs]

    def ordered_paths(self, step: int, tau: float, *, replacement: bool = False) -> Iterator[torch.Tensor]:
        """SurgeNAS' ordered differentiable sampling (thesis Alg. 1, Eq 3.9-3.11): ``K`` single paths (``K`` = the
        most ops a layer allows), each a hard straight-through Gumbel-softmax sample at temperature ``tau`` from
        ``P`` with the ops drawn by the previous paths of the step masked out and the rest renormalised, so every
        allowed op of every layer is drawn exactly once in the first ``n_l`` paths of layer ``l``. A layer with
        fewer ops than ``K`` (e.g. no skip where the shape changes) draws a fresh unmasked sample for its extra
        paths (``METHODS.md``). ``replacement=True``: the ablation, ``K`` independent samples from ``P``.

        Yields each path's ``L x K`` weights (differentiable in alpha) after setting it, so the caller runs that
        path's forward and backward before the next is drawn (only one path's graph is alive at a time). The noise
        is a function of (seed, step, i): every rank draws the same paths.
        """
        allowed = self.mask
        count = int(allowed.sum(-1).max())
        drawn = torch.zeros_like(allowed)
        for i in range(count):
            excluded = ~allowed if replacement else drawn | ~allowed
            exhausted = excluded.all(-1, keepdim=True)  # every op of the layer drawn: an unmasked extra sample
            excluded = torch.where(exhausted, ~allowed, excluded)
            logits = self.alpha.masked_fill(excluded, -math.inf)
            # softmax over the remaining logits is P renormalised over the remaining ops (Alg. 1, lines 5-6)
            soft = torch.softmax((logits + self._gumbel(step, i)) / tau, dim=-1)
            index = soft.argmax(dim=-1)
            hard = F.one_hot(index, soft.shape[-1]).to(soft.dtype)
            drawn = drawn | hard.bool()
            weights = hard - soft.detach() + soft
            self.state.weights, self.state.chosen = weights, index.tolist()
            yield weights

    def derived_spec(self) -> ArchSpec:
        """The derived architecture: the most likely op per layer (of the non-zero ops with the ``nonzero``
        rule), unless the space refuses that as a network (e.g. a NAS-Bench-201 cell whose output is cut off from
        its input); then the space's most likely valid one (:meth:`~edgenas.spaces.SearchSpace.derive`)."""
        return self.space.derive(self.masked_logits().detach(), self.derivation)

    def rule_spec(self) -> ArchSpec:
        """The derivation rule's architecture before any validity repair (what :meth:`derived_spec` returns when
        the space accepts it)."""
        return self.space.make_spec(self.space.rule_logits(self.masked_logits(), self.derivation).argmax(-1).tolist())

    def derived_one_hot(self) -> torch.Tensor:
        return self.space.one_hot(self.derived_spec())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

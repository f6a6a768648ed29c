"""The search-space interface and the generic machinery every space shares.

A space is data plus a builder: a fixed list of candidate ops (``op_names``, K of them), a number of searchable
layers L, a per-layer mask of allowed ops, a human form (parse/format), a graph adjacency and ``build``. Sampling,
mutation, crossover, validation and the one-hot encoding are written once here, over the mask, so that search
methods never special-case a space.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from edgenas.errors import ArchError, SearchError, SpaceConfigError, SpaceMismatchError
from edgenas.spaces.encoding import GraphEncoding, chain_adjacency, graph_features
from edgenas.spaces.spec import ArchSpec, freeze, thaw

Seed = int | np.random.Generator | None


def as_rng(seed: Seed) -> np.random.Generator:
    """A numpy Generator from an int seed, an existing Generator (used as is) or None (fresh entropy)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def config_from_options(config_type: type, defaults: Any, options: dict[str, Any], space: str) -> Any:
    """Build a frozen config dataclass from ``defaults`` overridden by ``options``, rejecting unknown names.

    Raises:
        SpaceConfigError: an option name the space does not have.
    """
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise SpaceConfigError(f"{space}: unknown option(s) {', '.join(unknown)}; options: {', '.join(sorted(names))}")
    return dataclasses.replace(defaults, **{k: _typed(space, k, v, getattr(defaults, k)) for k, v in options.items()})


def _typed(space: str, name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the option's default: ints stay ints, floats are finite numbers, tuples
    are lists of the default's element type (``--set width=abc`` is refused here, not deep inside a builder).

    Raises:
        SpaceConfigError: a value of another type, or a non-finite number.
    """
    value = freeze(value)

    def refuse(expected: str) -> SpaceConfigError:
        return SpaceConfigError(f"{space}: option {name} must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("an integer")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refuse("a finite number")
        value = float(value)
    elif isinstance(default, tuple):
        if not isinstance(value, tuple) or any(not _same_kind(v, d) for v in value for d in default[:1]):
            raise refuse(f"a list like {list(default)}")
    elif default is not None and not isinstance(value, type(default)):
        raise refuse(f"a {type(default).__name__}")
    return value


def _same_kind(value: Any, example: Any) -> bool:
    if isinstance(example, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(example, bool)
    if isinstance(example, int):
        return isinstance(value, int)
    if isinstance(example, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(example))


#: Builds one searchable layer of a supernet from its layer index and its candidate modules by op index.
ChoiceFactory = Callable[[int, dict[int, nn.Module]], nn.Module]


#: How a search turns its logits into an architecture (:meth:`SearchSpace.derive`): the most likely op per layer,
#: or the most likely non-zero op (DARTS' rule).
DERIVATION_RULES = ("argmax", "nonzero")


class SearchSpace(ABC):
    """A search space: candidate ops per layer, a human form, an encoding and a network builder.

    Subclasses set ``family`` and ``op_names`` and implement :meth:`layer_names`, :meth:`_allowed`,
    :meth:`format`, :meth:`parse`, :meth:`graph_adjacency` and :meth:`_build`.
    """

    #: Name of the space definition (``mbv2``, ``fbnet``, ``nb201``): part of the configuration hash.
    family: str = ""
    #: The K candidate ops, in encoding order.
    op_names: tuple[str, ...] = ()
    #: Ops whose output is zero (a removed edge): the ``nonzero`` derivation rule leaves them out.
    zero_ops: tuple[str, ...] = ()
    #: :class:`~edgenas.search.engine.SearchConfig` fields a search of this space defaults to (the loop measured
    #: to find accurate archs here); a value the user gives wins. Empty: the engine's (thesis') defaults.
    search_loop: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.check_config()

    # ----- configuration -----------------------------------------------------------------------------------------
    def check_config(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Raise :class:`SpaceConfigError` for an invalid configuration (subclasses extend it)."""

    @cached_property
    def options(self) -> tuple[tuple[str, Any], ...]:
        """The resolved configuration as sorted, hashable ``(name, value)`` pairs."""
        return tuple(sorted((k, freeze(v)) for k, v in dataclasses.asdict(self.config).items()))

    @cached_property
    def config_hash(self) -> str:
        """A short SHA-256 of the space family, its op list and its resolved configuration."""
        payload = json.dumps(
            {"family": self.family, "ops": list(self.op_names), "config": {k: thaw(v) for k, v in self.options}},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def resolution(self) -> int:
        """Input height and width in pixels."""
        return int(self.config.resolution)

    def input_shape(self, batch: int = 1, resolution: int | None = None) -> tuple[int, int, int, int]:
        """``(batch, 3, H, W)`` of the network input."""
        r = self.resolution if resolution is None else resolution
        return (batch, 3, r, r)

    def scale_width(self, factor: float) -> SearchSpace:
        """The same space with every layer ``factor`` times wider (Comfort Zone scaling, thesis Eq 3.20).

        Raises:
            SpaceConfigError: the space has no width option.
        """
        raise SpaceConfigError(f"{self.name} has no width option to scale")

    # ----- layers and masks --------------------------------------------------------------------------------------
    @abstractmethod
    def layer_names(self) -> tuple[str, ...]:
        """One readable name per searchable layer (``stage2.block1``, ``edge 2<-1`` ...)."""

    @abstractmethod
    def _allowed(self, layer: int) -> tuple[int, ...]:
        """Indices of the ops allowed at ``layer``."""

    def disallowed_reason(self, layer: int, op: int) -> str:
        """Why ``op`` is not allowed at ``layer`` (for error messages)."""
        return "not a candidate at this layer"

    @property
    def num_layers(self) -> int:
        """L: the number of searchable layers."""
        return len(self.layer_names())

    @property
    def num_ops(self) -> int:
        """K: the number of candidate ops."""
        return len(self.op_names)

    @cached_property
    def allowed_ops(self) -> tuple[tuple[int, ...], ...]:
        """Per layer, the allowed op indices."""
        return tuple(self._allowed(layer) for layer in range(self.num_layers))

    @cached_property
    def _mask(self) -> torch.Tensor:
        mask = torch.zeros(self.num_layers, self.num_ops, dtype=torch.bool)
        for layer, ops in enumerate(self.allowed_ops):
            mask[layer, list(ops)] = True
        return mask

    def mask(self) -> torch.Tensor:
        """``L x K`` boolean tensor, True where the op is allowed (a copy)."""
        return self._mask.clone()

    def size(self) -> int:
        """|A|: the number of architectures after masking."""
        return math.prod(len(ops) for ops in self.allowed_ops)

    # ----- specs -------------------------------------------------------------------------------------------------
    def make_spec(self, choices: Sequence[int | str]) -> ArchSpec:
        """A validated spec from per-layer op indices or op names.

        Raises:
            ArchError: wrong number of layers, an unknown op, or an op not allowed at its layer (the message names
                the layer and the op).
        """
        if len(choices) != self.num_layers:
            raise ArchError(f"{self.name}: expected {self.num_layers} layers, got {len(choices)}")
        indices = []
        for layer, choice in enumerate(choices):
            if isinstance(choice, str):
                if choice not in self.op_names:
                    raise ArchError(
                        f"{self.name}: layer {layer} ({self.layer_names()[layer]}): unknown op {choice!r}; "
                        f"ops: {', '.join(self.op_names)}"
                    )
                index = self.op_names.index(choice)
            else:
                index = int(choice)
                if not 0 <= index < self.num_ops:
                    raise ArchError(f"{self.name}: layer {layer}: op index {index} outside 0..{self.num_ops - 1}")
            if index not in self.allowed_ops[layer]:
                allowed = ", ".join(self.op_names[i] for i in self.allowed_ops[layer])
                raise ArchError(
                    f"{self.name}: layer {layer} ({self.layer_names()[layer]}): op {self.op_names[index]!r} is not "
                    f"allowed ({self.disallowed_reason(layer, index)}); allowed: {allowed}"
                )
            indices.append(index)
        return ArchSpec(self.name, self.options, self.config_hash, tuple(indices))

    def check_spec(self, spec: ArchSpec) -> ArchSpec:
        """Return ``spec`` after checking that it belongs to this space and is valid.

        Raises:
            SpaceMismatchError: the spec was made for another space or configuration.
            ArchError: a layer holds a disallowed op.
        """
        if spec.space_hash != self.config_hash:
            raise SpaceMismatchError(
                f"spec belongs to {spec.space} (hash {spec.space_hash}), not to {self.name} (hash {self.config_hash})"
            )
        return self.make_spec(spec.choices)

    @abstractmethod
    def parse(self, text: str) -> ArchSpec:
        """The spec written as ``text`` in the space's human form.

        Raises:
            ArchError: the text does not describe an architecture of this space.
        """

    @abstractmethod
    def format(self, spec: ArchSpec) -> str:
        """The human form of ``spec``."""

    # ----- sampling and evolution helpers ------------------------------------------------------------------------
    def sample(self, seed: Seed = None, n: int = 1, *, ordered: bool = False) -> list[ArchSpec]:
        """``n`` architectures drawn uniformly (independently per layer over the allowed ops), or with ``ordered``
        as SurgeNAS samples its predictor's data (thesis Sec 3.3.5, the ordered sampling of Fig 3.6 at uniform
        probabilities): in groups of ``K`` (the most ops a layer allows), each layer's allowed ops in a random order,
        so every op of every layer appears exactly once per group (a layer with fewer ops fills the rest of the
        group with random draws of its own ops). Each op then appears equally often per layer."""
        rng = as_rng(seed)
        if ordered:
            return self._sample_ordered(rng, n)
        specs = []
        for _ in range(n):
            choices = [ops[rng.integers(len(ops))] for ops in self.allowed_ops]
            specs.append(ArchSpec(self.name, self.options, self.config_hash, tuple(choices)))
        return specs

    def _sample_ordered(self, rng: np.random.Generator, n: int) -> list[ArchSpec]:
        group = max(len(ops) for ops in self.allowed_ops)
        specs: list[ArchSpec] = []
        while len(specs) < n:
            columns = [
                np.concatenate([rng.permutation(ops), rng.choice(ops, group - len(ops))]) for ops in self.allowed_ops
            ]
            for i in range(min(group, n - len(specs))):
                choices = tuple(int(column[i]) for column in columns)
                specs.append(ArchSpec(self.name, self.options, self.config_hash, choices))
        return specs

    def mutate(self, spec: ArchSpec, seed: Seed = None, num_layers: int = 1) -> ArchSpec:
        """A copy of ``spec`` with ``num_layers`` distinct layers changed to another allowed op.

        Layers with a single allowed op are never picked; the result always differs from ``spec`` when at least one
        layer has a choice.
        """
        self.check_spec(spec)
        rng = as_rng(seed)
        free = [layer for layer, ops in enumerate(self.allowed_ops) if len(ops) > 1]
        if not free:
            return spec
        picked = rng.choice(free, size=min(num_layers, len(free)), replace=False)
        choices = list(spec.choices)
        for layer in picked:
            others = [op for op in self.allowed_ops[layer] if op != choices[layer]]
            choices[layer] = others[rng.integers(len(others))]
        return ArchSpec(self.name, self.options, self.config_hash, tuple(choices))

    def crossover(self, a: ArchSpec, b: ArchSpec, seed: Seed = None) -> ArchSpec:
        """Uniform crossover: each layer's op comes from ``a`` or ``b`` with probability 1/2."""
        self.check_spec(a)
        self.check_spec(b)
        rng = as_rng(seed)
        take_a = rng.random(self.num_layers) < 0.5
        choices = tuple(x if t else y for x, y, t in zip(a.choices, b.choices, take_a, strict=True))
        return ArchSpec(self.name, self.options, self.config_hash, choices)

    # ----- encodings ---------------------------------------------------------------------------------------------
    def one_hot(self, specs: ArchSpec | Sequence[ArchSpec]) -> torch.Tensor:
        """``L x K`` one-hot of one spec, or ``N x L x K`` for a sequence."""
        single = isinstance(specs, ArchSpec)
        batch = [specs] if single else list(specs)
        out = torch.zeros(len(batch), self.num_layers, self.num_ops)
        for i, spec in enumerate(batch):
            self.check_spec(spec)
            out[i, torch.arange(self.num_layers), torch.tensor(spec.choices)] = 1.0
        return out[0] if single else out

    def identity_blocks(self, backbone: nn.Module) -> list[nn.Module]:
        """The searchable blocks of a supernet backbone (:meth:`supernet_backbone`), each of which may get one
        identity mapping around it (SurgeNAS' ``identity_scope="block"``); empty: every searchable layer is its
        own block (a layer-wise chain)."""
        return []

    def is_valid_network(self, spec: ArchSpec) -> bool:
        """Whether ``spec`` is a network whose output depends on its input (every space's arch is, unless the space
        says otherwise: a NAS-Bench-201 cell of ``none`` edges is not)."""
        return True

    def derive(self, logits: torch.Tensor, rule: str = "argmax") -> ArchSpec:
        """The architecture a search derives from its ``L x K`` logits (disallowed ops at -inf): the most likely
        op of every layer (``rule="argmax"``), or of every layer's ops but the zero ops (``"nonzero"``: DARTS'
        rule, Liu et al. 2019 Sec 2.4; :attr:`zero_ops`; a layer whose only allowed op is a zero op keeps it). A
        space with archs that are not valid networks overrides it to pick the most likely valid one when this one
        is not.

        Raises:
            SearchError: an unknown rule.
        """
        return self.make_spec(self.rule_logits(logits, rule).argmax(dim=-1).tolist())

    def rule_logits(self, logits: torch.Tensor, rule: str) -> torch.Tensor:
        """``logits`` with what ``rule`` leaves out of the derivation at -inf (:data:`DERIVATION_RULES`).

        Raises:
            SearchError: an unknown rule.
        """
        if rule not in DERIVATION_RULES:
            raise SearchError(f"derivation rule must be one of {', '.join(DERIVATION_RULES)}, got {rule!r}")
        logits = logits.detach().masked_fill(~self._mask.to(logits.device), float("-inf"))
        zero = [self.op_names.index(op) for op in self.zero_ops]
        if rule == "argmax" or not zero:
            return logits
        dropped = logits.clone()
        dropped[:, zero] = float("-inf")
        keeps_one = torch.isfinite(dropped).any(dim=-1, keepdim=True)  # a layer of zero ops only keeps them
        return torch.where(keeps_one, dropped, logits)

    def from_one_hot(self, encoding: torch.Tensor) -> ArchSpec | list[ArchSpec]:
        """Specs from (possibly soft) encodings: per layer the arg-max over the allowed ops.

        Raises:
            SpaceMismatchError: the encoding's last two dimensions are not ``L x K``.
        """
        if tuple(encoding.shape[-2:]) != (self.num_layers, self.num_ops):
            raise SpaceMismatchError(
                f"{self.name}: encoding of shape {tuple(encoding.shape)} does not end in L x K = "
                f"{self.num_layers} x {self.num_ops}"
            )
        single = encoding.dim() == 2
        x = encoding.detach().float().reshape(-1, self.num_layers, self.num_ops)
        masked = x.masked_fill(~self._mask, float("-inf"))
        picks = masked.argmax(dim=-1).tolist()
        specs = [ArchSpec(self.name, self.options, self.config_hash, tuple(p)) for p in picks]
        return specs[0] if single else specs

    @abstractmethod
    def graph_adjacency(self) -> torch.Tensor:
        """``(L+2) x (L+2)`` adjacency over the nodes input, layers 1..L, output."""

    def graph(self, spec: ArchSpec) -> GraphEncoding:
        """The graph form of ``spec`` (adjacency + node features, see :mod:`edgenas.spaces.encoding`)."""
        return GraphEncoding(self.graph_adjacency(), graph_features(self.one_hot(spec)))

    # ----- networks ----------------------------------------------------------------------------------------------
    def build(self, spec: ArchSpec) -> nn.Module:
        """A standalone ``nn.Module`` for ``spec`` (no search code attached; train mode, random init)."""
        return self._build(self.check_spec(spec))

    @abstractmethod
    def _build(self, spec: ArchSpec) -> nn.Module:
        """Build a network for an already validated spec."""

    def supernet_backbone(self, choice: ChoiceFactory) -> nn.Module:
        """The space's network with each searchable layer ``l`` replaced by ``choice(l, {op: candidate module})``
        over the allowed ops of ``l`` (the hook the search supernet builds on; it never tests a space's name).

        Raises:
            SearchError: the space cannot be searched with a weight-sharing supernet.
        """
        raise SearchError(f"no supernet for space {self.name!r} (family {self.family!r})")

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: options, hash, ops, per-layer allowed ops, |A|."""
        size = self.size()
        return {
            "space": self.name,
            "family": self.family,
            "space_hash": self.config_hash,
            "options": {k: thaw(v) for k, v in self.options},
            "ops": list(self.op_names),
            "num_layers": self.num_layers,
            "layers": [
                {"index": i, "name": name, "allowed": [self.op_names[j] for j in self.allowed_ops[i]]}
                for i, name in enumerate(self.layer_names())
            ],
            "size": str(size),
            "log10_size": round(math.log10(size), 3),
            "input_shape": list(self.input_shape()),
        }


class LayerwiseSpace(SearchSpace):
    """A chain of searchable layers written as op tokens joined by ``-`` (``k5e6-skip-k3e3-...``)."""

    def parse(self, text: str) -> ArchSpec:
        tokens = [t.strip() for t in text.strip().split("-")]
        if len(tokens) != self.num_layers:
            raise ArchError(
                f"{self.name}: expected {self.num_layers} '-'-separated layer tokens, got {len(tokens)} in {text!r}"
            )
        return self.make_spec(tokens)

    def format(self, spec: ArchSpec) -> str:
        return "-".join(self.op_names[c] for c in spec.choices)

    def graph_adjacency(self) -> torch.Tensor:
        return chain_adjacency(self.num_layers)

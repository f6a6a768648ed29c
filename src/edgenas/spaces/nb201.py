"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) and its standard macro network.

A cell is a DAG of 4 nodes; each of the 6 edges ``i <- j`` (j < i) carries one of ``none``, ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``, so |A| = 5^6 = 15,625. The human form is the benchmark's
string, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), and
:meth:`NB201Space.index` / :meth:`NB201Space.from_index` give the benchmark's own index (0..15624; the same index in
NAS-Bench-201, NATS-Bench ``tss``, HW-NAS-Bench and HELP), read from the table shipped in ``spaces/data``.

Macro network (C=16, N=5, 32x32 input): 3x3 stem conv + BN; N cells at C channels; a ResNet basic block with stride 2
to 2C; N cells; a basic block to 4C; N cells; BN + ReLU; global pooling; linear classifier. ``nor_conv`` is
ReLU-conv-BN, ``avg_pool_3x3`` excludes the padding from the average, and the basic block's shortcut is a 2x2
average pool followed by a 1x1 conv. Parameter counts match the benchmark's table exactly; its FLOPs column also
counts BN and pooling, so it exceeds our multiply-adds (convolutions and the classifier only) by 0.16-6.6 M
(`benchmarks/foundation.py`, every 50th cell).
A ``none`` edge is left out of the deployed network instead of being multiplied by zero; a node with no live input
is a zero tensor.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from edgenas.errors import ArchError, SpaceConfigError
from edgenas.spaces._base import ChoiceFactory, SearchSpace, config_from_options
from edgenas.spaces._layout import init_weights
from edgenas.spaces._registry import register_space
from edgenas.spaces.spec import ArchSpec

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The 6 edges as (to_node, from_node) in the benchmark's string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)


@dataclass(frozen=True)
class NB201Config:
    """Options of the ``nb201`` space.

    Attributes:
        resolution: input height and width (px); the benchmark uses 32.
        num_classes: classifier outputs (10 for CIFAR-10).
        channels: C, the channels of the first stage.
        cells_per_stage: N, the cells in each of the three stages.
    """

    resolution: int = 32
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5


@cache
def _index_table() -> tuple[tuple[int, ...], ...]:
    """Benchmark index -> op indices of the 6 edges, from the shipped table (one line of 6 digits per index)."""
    text = resources.files("edgenas.spaces").joinpath("data/nb201_index.txt").read_text(encoding="ascii")
    rows = tuple(tuple(int(ch) for ch in line) for line in text.split())
    if len(rows) != NUM_ARCHS:  # a broken install, not a user error
        raise RuntimeError(f"nb201_index.txt holds {len(rows)} rows, expected {NUM_ARCHS}")
    return rows


@cache
def _connected_table() -> torch.Tensor:
    """``N x 6`` op indices of the N cells whose output node is reached from its input (see
    :func:`cell_is_connected`), in benchmark order."""
    return torch.tensor([row for row in _index_table() if cell_is_connected(row)], dtype=torch.long)


def cell_is_connected(choices: tuple[int, ...]) -> bool:
    """Whether node 3 (the cell's output) is reached from node 0 over edges that are not ``none``: a cell that is
    not computes zero whatever its input (NAS-Bench-201 gives such cells 10%, chance)."""
    live = [True, False, False, False]
    for (i, j), op in zip(EDGES, choices, strict=True):
        live[i] = live[i] or (live[j] and OPS[op] != "none")
    return live[3]


@cache
def _index_of() -> dict[tuple[int, ...], int]:
    return {choices: i for i, choices in enumerate(_index_table())}


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias) -> BN: NAS-Bench-201's ``nor_conv`` op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction block: two ReLU-conv-BN (the first with stride 2) plus an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Zero(nn.Module):
    """The ``none`` op inside a supernet: a zero tensor of the input's shape (a standalone cell drops the edge)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _edge_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


class NB201Cell(nn.Module):
    """One cell: node i = sum of its live incoming edges; the output is node 3."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.ops = ops
        self.channels = channels
        self.edges = nn.ModuleDict(
            {f"{i}_{j}": _edge_op(op, channels) for (i, j), op in zip(EDGES, ops, strict=True) if op != "none"}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            inputs = [self.edges[f"{node}_{j}"](nodes[j]) for j in range(node) if f"{node}_{j}" in self.edges]
            nodes.append(functools.reduce(operator.add, inputs) if inputs else torch.zeros_like(x))
        return nodes[3]

    def extra_repr(self) -> str:
        return "|".join(self.ops)


class NB201Net(nn.Module):
    """The NAS-Bench-201 macro network for one cell."""

    def __init__(self, ops: tuple[str, ...], config: NB201Config) -> None:
        super().__init__()
        c, n = int(config.channels), int(config.cells_per_stage)
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        blocks: list[nn.Module] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                blocks.append(ResNetBasicBlock(width // 2, width))
            blocks.extend(NB201Cell(ops, width) for _ in range(n))
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * c, int(config.num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(out), 1))


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space: 6 edges x 5 ops, human form = the benchmark's cell string."""

    family = "nb201"
    op_names = OPS
    zero_ops = ("none",)
    #: NNI 3.0's DARTS loop (an architecture step and a weight step on every batch, constant learning rates, no
    #: weights-only warm-up, plain momentum, alpha at 1e-3·N(0,1), PyTorch's default initialisation) with
    #: NAS-Bench-201's affine-free BatchNorm in the search cells. DARTS found 90.8 ± 2.2 on it and 87.9 ± 3.6 on the
    #: engine's thesis loop (He init, zero alpha, a warm-up epoch, cosine lrs, epoch-wise alternation), 2.9 points
    #: lower, resolved at 5 paired seeds, with 2 of 5 argmax cells cut off from their input
    #: (``benchmarks/results/nb201_parity.md``). Cells only: the layer-wise spaces keep the thesis' loop until the
    #: same comparison is made there.
    search_loop = MappingProxyType(
        {
            "warmup_epochs": 0,
            "alternate": "batch",
            "w_lr_schedule": "constant",
            "alpha_lr_schedule": "constant",
            "w_nesterov": False,
            "alpha_init_std": 1e-3,
            "supernet_init": "torch",
            "search_bn_affine": False,
            # SurgeNAS' identity mapping once per cell, not per edge (edgenas.search.surgenas' docstring)
            "identity_scope": "block",
        }
    )

    def check_config(self) -> None:
        c = self.config
        if int(c.channels) < 1 or int(c.cells_per_stage) < 1 or int(c.num_classes) < 1 or int(c.resolution) < 4:
            raise SpaceConfigError(f"{self.name}: channels, cells_per_stage, num_classes >= 1 and resolution >= 4")

    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"edge {i}<-{j}" for i, j in EDGES)

    def scale_width(self, factor: float) -> NB201Space:
        """The space with C scaled by ``factor`` (rounded, at least 1)."""
        from edgenas.spaces._registry import get_space

        channels = max(1, round(int(self.config.channels) * factor))
        return get_space(self.name, **{**dict(self.options), "channels": channels})  # type: ignore[return-value]

    def _allowed(self, layer: int) -> tuple[int, ...]:
        return tuple(range(len(OPS)))

    def parse(self, text: str) -> ArchSpec:
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ArchError(f"{self.name}: expected 3 '+'-separated nodes like |op~0|+|op~0|op~1|+|...|, got {text!r}")
        ops: list[str] = []
        for node, part in enumerate(nodes, start=1):
            tokens = [t for t in part.strip().strip("|").split("|")]
            if len(tokens) != node:
                raise ArchError(f"{self.name}: node {node} needs {node} incoming edges, got {len(tokens)} in {part!r}")
            for j, token in enumerate(tokens):
                op, sep, source = token.partition("~")
                if not sep or source != str(j):
                    raise ArchError(f"{self.name}: edge {node}<-{j}: expected 'op~{j}', got {token!r}")
                ops.append(op)
        return self.make_spec(ops)

    def format(self, spec: ArchSpec) -> str:
        names = [OPS[c] for c in spec.choices]
        parts, k = [], 0
        for node in (1, 2, 3):
            parts.append("|" + "|".join(f"{names[k + j]}~{j}" for j in range(node)) + "|")
            k += node
        return "+".join(parts)

    def identity_blocks(self, backbone: nn.Module) -> list[nn.Module]:
        """Every cell of the backbone (a cell maps its input to an output of the same shape)."""
        return [m for m in backbone.modules() if isinstance(m, NB201Cell)]

    def is_valid_network(self, spec: ArchSpec) -> bool:
        """A cell is a network when its output is reached from its input (:func:`cell_is_connected`)."""
        return cell_is_connected(self.check_spec(spec).choices)

    def derive(self, logits: torch.Tensor, rule: str = "argmax") -> ArchSpec:
        """The rule's cell (argmax, or argmax of the non-``none`` ops), or when it is cut off from its input the
        connected cell of the largest summed log-probability (every connected cell scored at once)."""
        spec = super().derive(logits, rule)
        if self.is_valid_network(spec):
            return spec
        log_p = torch.log_softmax(self.rule_logits(logits, rule).double(), dim=-1)
        table = _connected_table()
        scores = log_p[torch.arange(len(EDGES)), table].sum(-1)
        return self.make_spec(table[int(scores.argmax())].tolist())

    def index(self, spec: ArchSpec) -> int:
        """The benchmark index (0..15624) of ``spec``."""
        return _index_of()[self.check_spec(spec).choices]

    def from_index(self, index: int) -> ArchSpec:
        """The spec at benchmark index ``index``.

        Raises:
            ArchError: ``index`` is outside 0..15624.
        """
        if not 0 <= int(index) < NUM_ARCHS:
            raise ArchError(f"{self.name}: index {index} outside 0..{NUM_ARCHS - 1}")
        return self.make_spec(_index_table()[int(index)])

    def graph_adjacency(self) -> torch.Tensor:
        """Op-on-node DAG: input -> edges out of node 0; edge (i<-j) -> edges out of node i; edges into 3 -> output."""
        n = len(EDGES) + 2
        adj = torch.zeros(n, n)
        for a, (i, j) in enumerate(EDGES, start=1):
            if j == 0:
                adj[0, a] = 1.0
            if i == 3:
                adj[a, n - 1] = 1.0
            for b, (_, j2) in enumerate(EDGES, start=1):
                if j2 == i:
                    adj[a, b] = 1.0
        return adj

    def _build(self, spec: ArchSpec) -> nn.Module:
        return NB201Net(tuple(OPS[c] for c in spec.choices), self.config)

    def supernet_backbone(self, choice: ChoiceFactory) -> nn.Module:
        """The macro network whose every cell edge is a choice layer over the allowed ops (``none`` = :class:`Zero`)."""
        net = self.build(self.make_spec([ops[0] for ops in self.allowed_ops]))
        for cell in net.modules():
            if isinstance(cell, NB201Cell):
                cell.edges = nn.ModuleDict(
                    {
                        f"{i}_{j}": choice(layer, {k: _edge_op(OPS[k], cell.channels) for k in self.allowed_ops[layer]})
                        for layer, (i, j) in enumerate(EDGES)
                    }
                )
        init_weights(net)
        return net


@register_space("nb201")
def nb201(**options: Any) -> NB201Space:
    """NAS-Bench-201's cell space with its CIFAR macro network (C=16, N=5)."""
    return NB201Space("nb201", config_from_options(NB201Config, NB201Config(), options, "nb201"))

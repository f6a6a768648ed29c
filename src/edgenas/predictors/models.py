"""Predictor networks over relaxed one-hot encodings (``N x L x K``), all differentiable w.r.t. the input.

* :class:`MLPNet`: thesis Sec 4.3.2, 128-64-1 on the flattened one-hot.
* :class:`GraphNet`: thesis Sec 3.3.4, Eq 3.14-3.15. Nodes are input, layers (edge ops for cells) and output, with
  features from :func:`edgenas.spaces.graph_features`; the adjacency M is fixed per space. A layer computes
  ``1/2 [H+ * relu(M X W+) + H- * relu(M^T X W-)]`` (forward and backward message passing; the thesis' second M
  is M^T), where H+ and H- are attention masks. The thesis adds them because a plain GNN "treats all the operators
  in the same way while the inference latency highly depends on the selected operators", so by default
  (``attention="operator"``) they are a function of each node's (relaxed) operator features and of its position:
  ``H = sigmoid(B_node + X0 A + b)`` per channel, X0 the node's one-hot op and node-type flags, B a learned term
  per node and channel, differentiable in the encoding (``METHODS.md``). ``"operator-only"`` drops B (the masks see
  the op but not where it is: the same op costs differently at different resolutions and widths, so it lost to the
  node form on the layer-wise spaces, ``benchmarks/results/predictors.md``); ``"node"`` is the first wave's form,
  B alone, which does not depend on the input (on a chain, a position code); ``"none"``: masks of 1, the plain GCN
  of Eq 3.14. M includes self-loops and is row-normalised so a node keeps its own features and depth does not blow up
  the scale. 3 layers of 128, mean readout over nodes, then an MLP 64-64-1.
* :class:`LinearTable`: a look-up table, one value per (layer, op) plus a constant: the LUT baseline (thesis Fig 4.5)
  as a linear model of the one-hot.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from edgenas.spaces.encoding import graph_features


class MLPNet(nn.Module):
    """Flattened one-hot -> hidden layers -> one output."""

    def __init__(self, num_layers: int, num_ops: int, hidden: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        dims = (num_layers * num_ops, *hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1)).squeeze(-1)


#: Forms of the GNN's attention masks (see the module docstring).
ATTENTIONS = ("operator", "operator-only", "node", "none")


class GraphLayer(nn.Module):
    """One bidirectional graph-convolution layer with attention masks (thesis Eq 3.14/3.15, :data:`ATTENTIONS`).

    Args:
        in_dim / out_dim: feature widths; num_nodes: nodes of the graph (``node`` masks);
        feature_dim: width of the nodes' operator features (``operator`` masks); attention: the masks' form.
    """

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, attention: str, feature_dim: int = 0) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.forward_weight = nn.Linear(in_dim, out_dim, bias=False)
        self.backward_weight = nn.Linear(in_dim, out_dim, bias=False)
        self.attention = attention
        if attention in ("node", "operator"):
            self.mask_forward = nn.Parameter(torch.zeros(num_nodes, out_dim))
            self.mask_backward = nn.Parameter(torch.zeros(num_nodes, out_dim))
        if attention in ("operator", "operator-only"):  # zero-initialised: the masks start as the node form's
            self.gate_forward = nn.Linear(feature_dim, out_dim)
            self.gate_backward = nn.Linear(feature_dim, out_dim)
            for gate in (self.gate_forward, self.gate_backward):
                nn.init.zeros_(gate.weight)
                nn.init.zeros_(gate.bias)

    def masks(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """H+ and H- for nodes with operator ``features`` (``N x nodes x F``), or None without attention."""
        if self.attention == "none":
            return None
        logits = [0.0, 0.0]
        if self.attention in ("node", "operator"):
            logits = [self.mask_forward, self.mask_backward]
        if self.attention in ("operator", "operator-only"):
            logits = [logits[0] + self.gate_forward(features), logits[1] + self.gate_backward(features)]
        return torch.sigmoid(logits[0]), torch.sigmoid(logits[1])

    def forward(
        self, h: torch.Tensor, adj_forward: torch.Tensor, adj_backward: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        fwd = torch.relu(adj_forward @ self.forward_weight(h))
        bwd = torch.relu(adj_backward @ self.backward_weight(h))
        masks = self.masks(features)
        if masks is not None:
            fwd, bwd = masks[0] * fwd, masks[1] * bwd
        return 0.5 * (fwd + bwd)


def _normalised(adj: torch.Tensor) -> torch.Tensor:
    a = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    return a / a.sum(dim=1, keepdim=True)


class GraphNet(nn.Module):
    """GNN (thesis Eq 3.15, masks of the :data:`ATTENTIONS` form) or GCN (``attention="none"``, Eq 3.14) regressor."""

    def __init__(
        self,
        adjacency: torch.Tensor,
        num_ops: int,
        *,
        attention: str = "operator",
        width: int = 128,
        depth: int = 3,
        head: tuple[int, ...] = (64, 64),
    ) -> None:
        super().__init__()
        n = adjacency.shape[0]
        # adjacency[i, j] = 1 for an edge i -> j: node j aggregates its predecessors through M^T rows
        self.register_buffer("adj_forward", _normalised(adjacency.t().contiguous()))
        self.register_buffer("adj_backward", _normalised(adjacency.contiguous()))
        dims = (num_ops + 2, *([width] * depth))
        self.layers = nn.ModuleList(
            GraphLayer(a, b, n, attention, feature_dim=num_ops + 2) for a, b in itertools.pairwise(dims)
        )
        head_dims = (width, *head)
        mlp: list[nn.Module] = []
        for a, b in itertools.pairwise(head_dims):
            mlp += [nn.Linear(a, b), nn.ReLU()]
        self.head = nn.Sequential(*mlp, nn.Linear(head_dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = features = graph_features(x)
        for layer in self.layers:
            h = layer(h, self.adj_forward, self.adj_backward, features)
        return self.head(h.mean(dim=1)).squeeze(-1)


class LinearTable(nn.Module):
    """``sum over layers of table[layer, op] * x[layer, op] + constant``: a look-up table as a linear model."""

    def __init__(self, num_layers: int, num_ops: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(num_layers, num_ops))
        self.constant = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.table).sum(dim=(1, 2)) + self.constant

"""Predictor networks over relaxed one-hot encodings (``N x L x K``), all differentiable w.r.t. the input.

* :class:`MLPNet`: thesis Sec 4.3.2, 128-64-1 on the flattened one-hot.
* :class:`GraphNet`: thesis Sec 3.3.4, Eq 3.14-3.15. Nodes are input, layers (edge ops for cells) and output, with
  features from :func:`edgenas.spaces.graph_features`; the adjacency M is fixed per space. A layer computes
  ``1/2 [H+ * relu(M X W+) + H- * relu(M^T X W-)]`` (forward and backward message passing; the thesis' second M
  is M^T), where H+ and H- are learned attention masks (sigmoid of a per-node, per-channel parameter). With
  ``attention=False`` the masks are 1: the plain GCN of Eq 3.14, the thesis' ablation. M includes self-loops and is
  row-normalised so a node keeps its own features and depth does not blow up the scale. 3 layers of 128, mean
  readout over nodes, then an MLP 64-64-1.
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


class GraphLayer(nn.Module):
    """One bidirectional graph-convolution layer with optional attention masks (thesis Eq 3.14/3.15)."""

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, attention: bool) -> None:
        super().__init__()
        self.forward_weight = nn.Linear(in_dim, out_dim, bias=False)
        self.backward_weight = nn.Linear(in_dim, out_dim, bias=False)
        self.attention = attention
        if attention:
            self.mask_forward = nn.Parameter(torch.zeros(num_nodes, out_dim))
            self.mask_backward = nn.Parameter(torch.zeros(num_nodes, out_dim))

    def forward(self, h: torch.Tensor, adj_forward: torch.Tensor, adj_backward: torch.Tensor) -> torch.Tensor:
        fwd = torch.relu(adj_forward @ self.forward_weight(h))
        bwd = torch.relu(adj_backward @ self.backward_weight(h))
        if self.attention:
            fwd = torch.sigmoid(self.mask_forward) * fwd
            bwd = torch.sigmoid(self.mask_backward) * bwd
        return 0.5 * (fwd + bwd)


def _normalised(adj: torch.Tensor) -> torch.Tensor:
    a = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    return a / a.sum(dim=1, keepdim=True)


class GraphNet(nn.Module):
    """GNN (``attention=True``, thesis Eq 3.15) or GCN (``attention=False``, Eq 3.14) latency regressor."""

    def __init__(
        self,
        adjacency: torch.Tensor,
        num_ops: int,
        *,
        attention: bool = True,
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
        self.layers = nn.ModuleList(GraphLayer(a, b, n, attention) for a, b in itertools.pairwise(dims))
        head_dims = (width, *head)
        mlp: list[nn.Module] = []
        for a, b in itertools.pairwise(head_dims):
            mlp += [nn.Linear(a, b), nn.ReLU()]
        self.head = nn.Sequential(*mlp, nn.Linear(head_dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = graph_features(x)
        for layer in self.layers:
            h = layer(h, self.adj_forward, self.adj_backward)
        return self.head(h.mean(dim=1)).squeeze(-1)


class LinearTable(nn.Module):
    """``sum over layers of table[layer, op] * x[layer, op] + constant``: a look-up table as a linear model."""

    def __init__(self, num_layers: int, num_ops: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(num_layers, num_ops))
        self.constant = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.table).sum(dim=(1, 2)) + self.constant

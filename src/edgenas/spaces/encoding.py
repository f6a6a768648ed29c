"""Encodings of architectures for predictors: relaxed one-hot tensors and graphs.

The one-hot form is ``L x K`` (layers x candidate ops, invalid choices are zero and masked). The graph form has
``L + 2`` nodes in a fixed order: the input node, one node per searchable layer (per edge for the cell space), and
the output node. Node features are the layer's one-hot row followed by two type flags (input, output), so a relaxed
(soft) one-hot batch maps to graph features differentiably: the adjacency depends only on the space.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class GraphEncoding(NamedTuple):
    """A graph view of one or many architectures.

    Attributes:
        adjacency: ``(L+2) x (L+2)`` 0/1 matrix, ``adjacency[i, j] = 1`` for an edge from node i to node j.
        features: ``(L+2) x (K+2)`` (or ``N x (L+2) x (K+2)`` for a batch) node features.
    """

    adjacency: torch.Tensor
    features: torch.Tensor


def graph_features(one_hot: torch.Tensor) -> torch.Tensor:
    """Node features for ``one_hot`` of shape ``L x K`` or ``N x L x K``; differentiable w.r.t. ``one_hot``.

    Returns:
        ``(L+2) x (K+2)`` or ``N x (L+2) x (K+2)``: row 0 is the input node, rows 1..L the layers, row L+1 the
        output node; the last two columns flag the input and the output node.
    """
    batched = one_hot.dim() == 3
    x = one_hot if batched else one_hot.unsqueeze(0)
    n, _, k = x.shape
    layers = F.pad(x, (0, 2))  # two zero type columns for the layer nodes
    source = x.new_zeros(n, 1, k + 2)
    source[..., k] = 1.0
    sink = x.new_zeros(n, 1, k + 2)
    sink[..., k + 1] = 1.0
    out = torch.cat([source, layers, sink], dim=1)
    return out if batched else out[0]


def chain_adjacency(num_layers: int) -> torch.Tensor:
    """Adjacency of a plain chain input -> layer 1 -> ... -> layer L -> output."""
    n = num_layers + 2
    adj = torch.zeros(n, n)
    idx = torch.arange(n - 1)
    adj[idx, idx + 1] = 1.0
    return adj

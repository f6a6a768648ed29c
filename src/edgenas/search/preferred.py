"""The arch a search prefers at a target: the highest alpha score among the valid archs predicted near T.

The closed loop (:mod:`.closed_loop`) walks from the searched arch towards T one layer at a time, each move the one
losing least score per unit of progress. From an arch far from T — the argmax of a search without a latency term,
or of one whose multiplier had not settled — that greedy walk ends on a locally preferred arch, not the one alpha
prefers most among those at T. This module finds that arch (a constrained argmax of the summed log-preference):

- exactly, by scoring every valid arch, when the space has at most :data:`ENUMERATE_LIMIT` archs (nb201: 15,625);
- otherwise approximately: walks towards T (:func:`walk_to_band`) from the argmax and from :data:`DRAWN_STARTS` archs
  drawn from alpha's own softmax (likely archs), the best-scoring end inside the band kept.

``close_loop(seek_preferred=True)`` also proposes around it. Measured on the NAS-Bench-201 referee
(``python benchmarks/nb201_parity.py derivations``, table "every search landed on T by the closed loop": 9 rows of
finished searches, 3-5 seeds each, x 4 targets, 137 landings per reading, the tables standing for the device): by
DARTS' rule seeking gained +1.20 points [+0.42, +2.13] over the walk but landed within ±2% of T 115 times instead of
130; by the plain argmax it changed nothing resolved (-0.19 [-0.59, +0.19]; 97 vs 103 within ±2%). Neither reading
wins accuracy and budget together, so it is an option and the walk stays the loop's default.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from edgenas.search.budget import single_layer_neighbours
from edgenas.spaces import SearchSpace

#: Spaces with at most this many archs are scored exhaustively (one batched prediction of every arch).
ENUMERATE_LIMIT = 50_000
#: Archs drawn from softmax(alpha) as extra starting points of the walks in a larger space.
DRAWN_STARTS = 16
#: Archs predicted per call while scoring a space exhaustively (bounds the memory of one batch).
CHUNK = 8_192

Predict = Callable[[torch.Tensor], torch.Tensor]


def score(hots: torch.Tensor, preference: torch.Tensor) -> torch.Tensor:
    """Summed per-layer log-preference (``L x K``) of each one-hot arch in ``hots`` (``N x L x K``)."""
    return (hots * preference).sum((-1, -2))


@torch.no_grad()
def walk_to_band(
    space: SearchSpace, hot: torch.Tensor, preference: torch.Tensor, predict: Predict, value: float, band: float
) -> torch.Tensor:
    """From ``hot`` towards ``value`` one layer at a time, each move the one losing least score per unit of
    progress, until the prediction is within ``band`` (relative) of it or no move makes progress."""
    gap = abs(float(predict(hot[None])[0]) - value)
    for _ in range(4 * space.num_layers):
        if gap <= band * value:
            break
        neighbours, allowed = single_layer_neighbours(hot, space)
        gaps = (predict(neighbours) - value).abs()
        progress = gap - gaps
        cost = (score(hot[None], preference) - score(neighbours, preference)).clamp(min=1e-6)
        merit = torch.where(allowed & (progress > 1e-9), progress / cost, torch.tensor(-1.0))
        best = int(merit.argmax())
        if float(merit[best]) <= 0:
            break
        hot, gap = neighbours[best], float(gaps[best])
    return hot


@torch.no_grad()
def preferred_near(
    space: SearchSpace, preference: torch.Tensor, predict: Predict, value: float, band: float, *, seed: int = 0
) -> torch.Tensor | None:
    """The one-hot of the valid arch of the highest score (:func:`score` under ``preference``) whose prediction is
    within ``band`` (relative) of ``value``; None when no arch found is (exhaustive below :data:`ENUMERATE_LIMIT`
    archs, walks above it: module docstring)."""
    if space.size() <= ENUMERATE_LIMIT:
        hots = _every_arch(space)
    else:
        hots = _walked(space, preference, predict, value, band, seed)
    best, best_score = None, -float("inf")
    for chunk in torch.split(hots, CHUNK):
        inside = (predict(chunk) / value - 1).abs() <= band
        scores = torch.where(inside, score(chunk, preference), torch.tensor(-float("inf")))
        for i in torch.argsort(scores, descending=True).tolist():
            if not bool(inside[i]) or float(scores[i]) <= best_score:
                break
            if space.is_valid_network(space.from_one_hot(chunk[i])):
                best, best_score = chunk[i], float(scores[i])
                break
    return best


def _every_arch(space: SearchSpace) -> torch.Tensor:
    """One-hots of every arch of ``space`` (``size x L x K``)."""
    choices = torch.tensor(list(itertools.product(*space.allowed_ops)))
    hots = torch.zeros(len(choices), space.num_layers, space.num_ops)
    hots.scatter_(2, choices[..., None], 1.0)
    return hots


def _walked(
    space: SearchSpace, preference: torch.Tensor, predict: Predict, value: float, band: float, seed: int
) -> torch.Tensor:
    """Ends of walks towards ``value`` from the argmax of ``preference`` and from archs drawn from its softmax."""
    rng = torch.Generator().manual_seed(int(np.uint32(seed)))
    drawn = torch.multinomial(preference.softmax(-1), DRAWN_STARTS, replacement=True, generator=rng).T
    starts = torch.cat([preference.argmax(-1)[None], drawn])
    hots = torch.zeros(len(starts), space.num_layers, space.num_ops).scatter_(2, starts[..., None], 1.0)
    return torch.stack([walk_to_band(space, h, preference, predict, value, band) for h in hots])

"""The predictor interface: relaxed one-hot encodings (``N x L x K``) -> predicted value (ms or mJ).

A :class:`Predictor` wraps a network from :mod:`edgenas.predictors.models` with the target transform it was trained
with (log for the learned kinds, so errors are relative; none for the LUT, whose values add up) and its metadata:
space and configuration hash, metric and unit, device and fingerprint, training-set size and value range, and its
validation scores. The forward pass is differentiable w.r.t. the encoding, so a search can push architecture
parameters through it. Saved as one file: ``torch.save`` of the state dict and the metadata as a JSON string, loaded
with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgenas.errors import CheckpointError, SpaceMismatchError
from edgenas.predictors.models import GraphNet, LinearTable, MLPNet
from edgenas.spaces import ArchSpec, SearchSpace, get_space
from edgenas.train.checkpoint import first_sentence, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Kinds that are torch networks (differentiable, saveable).
NETWORK_KINDS = ("mlp", "gnn", "gcn", "lut")
#: The attention form of a gnn fitted now (``edgenas.predictors.models.ATTENTIONS``; chosen by
#: ``benchmarks/predictors.py``) and of a gnn file that records none (written before the form was a choice).
GNN_ATTENTION = "operator"
LEGACY_GNN_ATTENTION = "node"
UNITS = {"latency_ms": "ms", "energy_mJ": "mJ"}


@dataclass
class PredictorMeta:
    """What a predictor predicts and what it was trained on.

    Attributes:
        kind: ``mlp``, ``gnn``, ``gcn`` or ``lut``.
        space, space_options, space_hash: the search space the encodings belong to.
        metric: ``latency_ms`` or ``energy_mJ``; ``unit`` follows from it.
        device: the device name (store device or table column); ``fingerprint`` its description.
        train_size: architectures it was fitted on; ``value_range`` their min and max target.
        transform: ``log`` or ``none``; ``mean``/``std``: standardisation of the transformed target.
        scores: validation or test scores recorded when it was fitted.
        level: the level its latencies are at (issue 30): ``reference`` (the arch timed beside its training
            measurements) and ``nominal_ms`` (its latency at that level); empty where the values were milliseconds
            of their moments.
    """

    kind: str
    space: str
    space_options: dict[str, Any]
    space_hash: str
    metric: str
    device: str
    train_size: int
    value_range: tuple[float, float]
    transform: str
    mean: float
    std: float
    fingerprint: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    hyper: dict[str, Any] = field(default_factory=dict)
    level: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """``ms`` or ``mJ``."""
        return UNITS.get(self.metric, "")


def build_network(kind: str, space: SearchSpace, hyper: dict[str, Any] | None = None) -> nn.Module:
    """The network of ``kind`` for ``space`` (``hyper`` may set ``hidden`` for mlp, ``width``/``depth`` for graphs,
    ``attention`` for gnn: a gnn saved without it is the first wave's, whose masks were per node)."""
    h = hyper or {}
    if kind == "mlp":
        return MLPNet(space.num_layers, space.num_ops, tuple(h.get("hidden", (128, 64))))
    if kind in ("gnn", "gcn"):
        return GraphNet(
            space.graph_adjacency(),
            space.num_ops,
            attention=h.get("attention", LEGACY_GNN_ATTENTION) if kind == "gnn" else "none",
            width=h.get("width", 128),
            depth=h.get("depth", 3),
        )
    if kind == "lut":
        return LinearTable(space.num_layers, space.num_ops)
    raise ValueError(f"unknown network kind {kind!r}")


class Predictor(nn.Module):
    """A trained predictor: ``forward(encodings) -> values`` in the metric's unit (see the module docstring)."""

    def __init__(self, net: nn.Module, meta: PredictorMeta) -> None:
        super().__init__()
        self.net = net
        self.meta = meta
        self.space = get_space(meta.space, **meta.space_options)
        if self.space.config_hash != meta.space_hash:
            raise SpaceMismatchError(
                f"predictor space hash {meta.space_hash} does not match {meta.space} "
                f"({self.space.config_hash}) in this edgenas"
            )

    def forward(self, encodings: torch.Tensor) -> torch.Tensor:
        """Predicted values (unit: ``meta.unit``) for ``N x L x K`` (possibly soft) encodings; differentiable."""
        expected = (self.space.num_layers, self.space.num_ops)
        if tuple(encodings.shape[-2:]) != expected:
            raise SpaceMismatchError(
                f"encodings of shape {tuple(encodings.shape)} do not fit {self.meta.space} (L x K = {expected})"
            )
        single = encodings.dim() == 2
        x = encodings.unsqueeze(0) if single else encodings
        dtype = next(self.net.parameters()).dtype
        z = self.meta.mean + self.meta.std * self.net(x.to(dtype))
        y = torch.exp(z) if self.meta.transform == "log" else z
        return y[0] if single else y

    @torch.no_grad()
    def predict(self, specs: ArchSpec | Sequence[ArchSpec], batch_size: int = 4096) -> np.ndarray | float:
        """Predicted values of specs (a float for one spec); warns when far outside the training range.

        Raises:
            SpaceMismatchError: a spec of another space or configuration.
        """
        single = isinstance(specs, ArchSpec)
        batch = [specs] if single else list(specs)
        for spec in batch[:1]:
            if spec.space_hash != self.meta.space_hash:
                raise SpaceMismatchError(
                    f"this predictor was trained on {self.meta.space} (hash {self.meta.space_hash}); the spec belongs "
                    f"to {spec.space} (hash {spec.space_hash})"
                )
        was_training = self.training
        self.eval()
        out = (
            np.concatenate(
                [self(self.space.one_hot(batch[i : i + batch_size])).numpy() for i in range(0, len(batch), batch_size)]
            )
            if batch
            else np.zeros(0)
        )
        self.train(was_training)
        lo, hi = self.meta.value_range
        outside = np.sum((out < 0.5 * lo) | (out > 2.0 * hi))
        if outside:
            logger.warning(
                "%d of %d predictions are far outside the training range %.4g..%.4g %s",
                outside,
                len(out),
                lo,
                hi,
                self.meta.unit,
            )
        return float(out[0]) if single else out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state dict and the metadata (JSON) to one file, atomically."""
        meta = asdict(self.meta)
        return save_checkpoint(
            path,
            {
                "format_version": FORMAT_VERSION,
                "meta": json.dumps(meta, sort_keys=True),
                "state_dict": self.state_dict(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictor:
        """Load a predictor written by :meth:`save` (with ``weights_only=True``).

        Raises:
            CheckpointError: not a predictor file, or another format version.
        """
        payload = load_checkpoint(path)
        if payload.get("format_version") != FORMAT_VERSION or "meta" not in payload:
            raise CheckpointError(f"{path} is not an edgenas predictor (format {payload.get('format_version')!r})")
        try:
            raw = json.loads(payload["meta"])
            raw["value_range"] = tuple(raw["value_range"])
            meta = PredictorMeta(**raw)
            space = get_space(meta.space, **meta.space_options)
            predictor = cls(build_network(meta.kind, space, meta.hyper), meta)
            predictor.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a damaged or hand-edited predictor file
            raise CheckpointError(f"{path} is a damaged edgenas predictor: {first_sentence(exc)}") from exc
        predictor.eval()
        return predictor


class CachedPredictor:
    """A predictor's values for specs of one space, cached by choices (an evolution asks for the same spec often).

    Args:
        predictor: a fitted :class:`Predictor`.
        space: the space the specs belong to.
        what: the space in words, for the error (``"channel space of this network"``).
        error: the exception raised when the predictor was fitted on another space.
        advice: appended to that error's message (what to do instead).
    """

    def __init__(
        self, predictor: Predictor, space: SearchSpace, what: str, error: type[Exception], advice: str = ""
    ) -> None:
        if predictor.meta.space_hash != space.config_hash:
            raise error(
                f"the predictor was fitted on {predictor.meta.space} (hash {predictor.meta.space_hash}), not on the "
                f"{what} (hash {space.config_hash}){advice}"
            )
        self.predictor = predictor
        self.cache: dict[tuple[int, ...], float] = {}

    def __call__(self, specs: list[ArchSpec]) -> list[float]:
        todo = [s for s in specs if s.choices not in self.cache]
        if todo:
            values = np.asarray(self.predictor.predict(todo), float).reshape(-1)
            self.cache.update({s.choices: float(v) for s, v in zip(todo, values, strict=True)})
        return [self.cache[s.choices] for s in specs]

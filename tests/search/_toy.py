"""A synthetic additive latency predictor on a narrow MobileNetV2 space, shared by the search tests."""

from __future__ import annotations

import torch

from edgenas.predictors.base import Predictor, PredictorMeta
from edgenas.predictors.models import LinearTable
from edgenas.spaces import get_space
from edgenas.spaces.spec import thaw


def toy_space():
    return get_space("mbv2-cifar", width=0.25)


def toy_predictor(space=None, seed: int = 0) -> Predictor:
    """``1 ms + sum of per-layer op costs`` drawn in 0.05..0.25 ms (skip cheapest): a known, differentiable LUT."""
    space = space or toy_space()
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(space.num_layers, space.num_ops, generator=g) * 0.2 + 0.05
    table[:, space.op_names.index("skip")] = 0.01
    return lut_predictor(space, table, 1.0, device="toy")


def lut_predictor(space, table: torch.Tensor, constant: float, device: str = "toy") -> Predictor:
    """A latency LUT predictor of ``space``: ``constant + sum over layers of table[layer, op]`` (ms)."""
    net = LinearTable(space.num_layers, space.num_ops)
    with torch.no_grad():
        net.table.copy_(table)
        net.constant.fill_(constant)
    meta = PredictorMeta(
        kind="lut",
        space=space.name,
        space_options={k: thaw(v) for k, v in space.options},
        space_hash=space.config_hash,
        metric="latency_ms",
        device=device,
        train_size=0,
        value_range=(1.0, 10.0),
        transform="none",
        mean=0.0,
        std=1.0,
    )
    return Predictor(net, meta)

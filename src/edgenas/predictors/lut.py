"""The look-up-table baseline measured the classic way (thesis Fig 4.5): time every candidate op of every layer in
isolation, at the layer's real input shape, on the target runtime; an architecture's latency is the sum of its ops'
entries plus a constant fitted on measured whole networks (what the isolated ops miss: stem, head, data movement
between layers, framework overhead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from edgenas.errors import SpaceConfigError
from edgenas.hardware.device import Device
from edgenas.predictors.base import Predictor, PredictorMeta
from edgenas.predictors.data import ArchTable
from edgenas.predictors.models import LinearTable
from edgenas.spaces import SearchSpace
from edgenas.spaces.spec import thaw


def measure_op_table(
    space: SearchSpace, device: Device, on_progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """``L x K`` latencies (ms) of each allowed op of each layer timed without the rest of the network, on
    ``device`` fed the layer's own input (channels, resolution); the ops of one layer are timed round-robin, so a
    drift of the machine hits them alike. NaN where an op is not allowed. ``on_progress(layers done, layers)``.

    Raises:
        SpaceConfigError: the space cannot build its layers alone (cell spaces).
    """
    if not hasattr(space, "layer_module"):
        raise SpaceConfigError(f"{space.name} cannot build its layers alone; fit the LUT on measurements instead")
    table = np.full((space.num_layers, space.num_ops), np.nan)
    for layer, ops in enumerate(space.allowed_ops):
        shape = space.layer_shapes[layer]
        alone = device.with_options(
            replace(device.options, channels=shape.in_channels, resolution=space.layer_input_size(layer))
        )
        rows = alone.measure(
            [space.layer_module(layer, op) for op in ops], labels=[f"layer {layer} op {op}" for op in ops]
        )
        table[layer, list(ops)] = [row.median_ms for row in rows]
        if on_progress is not None:
            on_progress(layer + 1, space.num_layers)
    return table


def lut_predictor(space: SearchSpace, table_ms: np.ndarray, whole: ArchTable, device: str) -> Predictor:
    """A ``lut`` predictor from an op table and whole-network measurements (which only set the constant)."""
    weights = torch.tensor(np.nan_to_num(table_ms, nan=0.0), dtype=torch.float32)
    x = space.one_hot(whole.specs)
    summed = (x * weights).sum(dim=(1, 2)).numpy()
    net = LinearTable(space.num_layers, space.num_ops)
    with torch.no_grad():
        net.table.copy_(weights)
        net.constant.fill_(float(np.mean(whole.values - summed)))
    meta = PredictorMeta(
        kind="lut",
        space=space.name,
        space_options={k: thaw(v) for k, v in space.options},
        space_hash=space.config_hash,
        metric="latency_ms",
        device=device,
        train_size=len(whole),
        value_range=(float(whole.values.min()), float(whole.values.max())),
        transform="none",
        mean=0.0,
        std=1.0,
        fingerprint=whole.fingerprint,
        hyper={"source": "ops timed in isolation", "sum_of_ops_mean_ms": float(summed.mean())},
    )
    return Predictor(net, meta).eval()

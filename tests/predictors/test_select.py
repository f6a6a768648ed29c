"""``predictor.kind = "auto"``: the kind is chosen by a validation split of the fitted archs."""

from __future__ import annotations

import numpy as np
import pytest

from edgenas.errors import MeasurementError
from edgenas.predictors import ArchTable, FitConfig
from edgenas.predictors.select import choose_kind
from edgenas.spaces import get_space


def test_an_additive_device_is_best_predicted_by_the_lut() -> None:
    """On a device whose latency is a sum of per-layer op costs (no interactions), the LUT is the exact model: the
    choice must follow the validation scores and pick it."""
    space = get_space("mbv2-cifar", width=0.25, resolution=16)
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.01, 0.2, (space.num_layers, space.num_ops))
    specs = space.sample(seed=0, n=120)
    values = np.array([0.5 + costs[np.arange(space.num_layers), s.choices].sum() for s in specs])
    table = ArchTable(space, specs, values, "latency_ms", "additive")
    kind, found = choose_kind(table, ("mlp", "lut"), FitConfig(epochs=60, seed=0), seed=0)
    assert kind == "lut" and set(found) == {"mlp", "lut"}
    assert found["lut"]["spearman"] > found["mlp"]["spearman"] + 0.05  # the choice follows the scores
    with pytest.raises(MeasurementError):
        choose_kind(table, ())

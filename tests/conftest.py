"""Shared fixtures: the data folder (from EDGENAS_DATA) and helpers that make numeric checks non-trivial."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder EDGENAS_DATA points at (``make test`` points it at the shared data); tests needing it skip without."""
    value = os.environ.get("EDGENAS_DATA")
    if not value or not Path(value).is_dir():
        pytest.skip("EDGENAS_DATA is not set to a data folder")
    return Path(value)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, so eval-mode BN is not an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model

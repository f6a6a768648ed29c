"""Helpers for numeric checks (export parity, reparameterisation exactness) on untrained networks."""

from __future__ import annotations

import torch
from torch import nn


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, in place, and return ``model``.

    A freshly built network has BN running statistics (0, 1) and affine (1, 0), so eval-mode BN is an identity and a
    check that drops or mis-folds BN would still pass; random statistics like a trained network's make it fail.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                if m.track_running_stats:
                    m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model

"""Every registered space builds a standalone network that trains, runs channels_last and exports to ONNX."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgenas.export import export_onnx
from edgenas.nn.testing import randomize_batchnorm as randomize_bn
from edgenas.spaces import build, get_space, list_spaces

# Tiny but valid settings per space: the smallest input the strides allow, few classes.
TINY = {
    "mbv2": {"resolution": 32, "num_classes": 5, "width": 0.25},
    "mbv2-cifar": {"resolution": 16, "num_classes": 5, "width": 0.25},
    "fbnet": {"resolution": 16, "num_classes": 5, "width": 0.25},
    "nb201": {"resolution": 16, "num_classes": 5, "channels": 4, "cells_per_stage": 1},
    "channels": {"base_options": '{"resolution": 16, "num_classes": 5, "width": 0.25}', "arch": ""},
    "domino": {"model": "torchvision:mobilenet_v2?width_mult=0.25", "num_classes": 5, "resolution": 32},
}


# Largest |channels_last - contiguous| difference allowed, as a share of the largest logit.
LAYOUT_TOLERANCE = 1e-3


def test_every_registered_space_has_tiny_settings():
    assert set(list_spaces()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_forward_backward(name):
    space = get_space(name, **TINY[name])
    spec = space.sample(seed=0)[0]
    net = build(spec)
    x = torch.randn(space.input_shape(2))
    out = net(x)
    assert out.shape == (2, 5)
    out.logsumexp(1).sum().backward()
    # an NB201 edge whose node does not reach the output gets no gradient; everything else must get a finite one
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(grads) >= 0.5 * len(list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", sorted(TINY))
def test_channels_last_gives_the_same_output(name):
    space = get_space(name, **TINY[name])
    net = randomize_bn(build(space.sample(seed=1)[0])).eval()
    x = torch.randn(space.input_shape(2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
        out = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    # The two layouts run different conv kernels whose float32 sums round differently (by 5e-5 on one CI CPU),
    # so the tolerance scales with the logits; a layout bug moves them by their own size.
    scale = float(ref.abs().max())
    torch.testing.assert_close(out, ref, rtol=0, atol=LAYOUT_TOLERANCE * scale)


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_parity(name, tmp_path):
    space = get_space(name, **TINY[name])
    net = randomize_bn(build(space.sample(seed=2)[0]), seed=3)
    result = export_onnx(net, tmp_path / "net.onnx", space.input_shape(2))
    assert result.path.is_file() and result.size_bytes > 0
    assert result.rel_error < 1e-4
    assert result.input_shape == space.input_shape(2)
    assert net.training  # the caller's mode is restored


def test_built_network_has_no_search_code_attached():
    space = get_space("mbv2-cifar", **TINY["mbv2-cifar"])
    net = build(space.sample(seed=0)[0])
    allowed = ("torch.nn.", "edgenas.nn.blocks", "edgenas.spaces._layout", "edgenas.spaces.nb201")
    assert all(type(m).__module__.startswith(allowed) for m in net.modules())
    assert not any(isinstance(m, nn.ParameterList | nn.ParameterDict) for m in net.modules())

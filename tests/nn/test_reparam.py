"""The reparameterisation engine: composed maps equal the chains they replace, in float64, and inexact chains raise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import ReparamError
from edgenas.nn.blocks import ChannelShuffle
from edgenas.nn.reparam import batchnorm_map, chain_map, conv_map, identity_map, shuffle_map
from edgenas.nn.testing import randomize_batchnorm

F64_ABS = 1e-10


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, groups=groups, bias=bias).double()


@pytest.mark.parametrize(
    ("k1", "s1", "g1", "k2", "s2", "g2"),
    [
        (1, 1, 1, 3, 1, 1),
        (3, 1, 1, 1, 1, 1),
        (3, 2, 1, 3, 1, 1),
        (5, 1, 4, 1, 2, 2),
        (3, 2, 8, 7, 1, 8),
        (1, 2, 2, 5, 2, 1),
    ],
)
def test_two_unpadded_convs_compose_into_one(k1: int, s1: int, g1: int, k2: int, s2: int, g2: int) -> None:
    torch.manual_seed(0)
    first, second = _conv(8, 8, k1, s1, g1), _conv(8, 8, k2, s2, g2)
    x = torch.randn(2, 8, 23, 21, dtype=torch.float64)
    merged = conv_map(first).then(conv_map(second))
    assert merged.kernel_size == (k1 + s1 * (k2 - 1),) * 2
    assert merged.stride == (s1 * s2,) * 2
    expected = second(first(x))
    got = merged.apply(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= F64_ABS


def test_batchnorm_and_shuffle_maps_match_the_modules() -> None:
    torch.manual_seed(1)
    bn = randomize_batchnorm(nn.BatchNorm2d(6)).double().eval()
    shuffle = ChannelShuffle(3)
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    assert (batchnorm_map(bn).apply(x) - bn(x)).abs().max().item() <= F64_ABS
    assert torch.equal(shuffle_map(shuffle, 6).apply(x), shuffle(x))
    assert torch.equal(identity_map(6).apply(x), x)


def test_a_first_padded_conv_keeps_its_padding() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2).double()
    bn = randomize_batchnorm(nn.BatchNorm2d(6)).double().eval()
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    merged = chain_map([conv, bn], 4)
    assert merged.padding == (1, 1)
    assert (merged.apply(x) - bn(conv(x))).abs().max().item() <= F64_ABS


def test_a_padded_conv_after_a_biased_conv_is_refused() -> None:
    # the zero padding of the second conv stands where the first conv would have produced its bias: not one conv
    first = nn.Conv2d(4, 4, 1, bias=True)
    second = nn.Conv2d(4, 4, 3, padding=1)
    with pytest.raises(ReparamError, match="pad the block input once"):
        chain_map([first, second], 4)


def test_parallel_branches_add_on_aligned_centres() -> None:
    torch.manual_seed(3)
    main = _conv(6, 6, 7, stride=2)
    projection = _conv(6, 6, 1, stride=2)
    x = torch.randn(2, 6, 17, 17, dtype=torch.float64)
    main_map = conv_map(main)
    main_map = type(main_map)(main_map.weight, main_map.bias, main_map.stride, (3, 3))
    merged = main_map.plus(conv_map(projection))
    expected = main(F.pad(x, (3, 3, 3, 3))) + projection(x)
    assert (merged.apply(x) - expected).abs().max().item() <= F64_ABS


def test_branches_of_different_output_size_are_refused() -> None:
    with pytest.raises(ReparamError, match="different output sizes"):
        conv_map(_conv(4, 4, 3)).plus(identity_map(4))


def test_to_conv_gives_a_depthwise_conv_for_a_diagonal_kernel() -> None:
    dw = _conv(6, 6, 3, groups=6)
    conv = conv_map(dw).to_conv(torch.float64)
    assert conv.groups == 6
    x = torch.randn(1, 6, 8, 8, dtype=torch.float64)
    assert (conv(x) - dw(x)).abs().max().item() <= F64_ABS

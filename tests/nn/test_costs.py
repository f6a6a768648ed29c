"""Cost figures against hand-computed values of thesis Eq 3.18-3.19."""

import pytest
from torch import nn

from edgenas.nn.costs import measure_costs
from edgenas.spaces import get_space


def test_single_conv_matches_eq_3_18():
    h = w = 8
    i, o, k = 4, 6, 3
    conv = nn.Conv2d(i, o, k, padding=1, bias=False)
    c = measure_costs(conv, (1, i, h, w))
    assert c.mult_adds == h * w * i * o * k * k
    assert c.flops == 2 * c.mult_adds
    assert c.memory_accesses == h * w * (i + o) + i * o * k * k
    assert c.intensity == pytest.approx(c.mult_adds / c.memory_accesses)
    assert c.params == i * o * k * k


def test_strided_grouped_conv_counts_its_real_shapes():
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)  # depthwise
    c = measure_costs(conv, (2, 8, 10, 10))
    assert c.memory_accesses == 2 * 8 * 10 * 10 + 2 * 8 * 5 * 5 + 8 * 9
    assert c.mult_adds == 2 * 8 * 5 * 5 * 9


def test_wider_network_has_higher_intensity_as_eq_3_20_predicts():
    base = get_space("mbv2-cifar")
    wide = get_space("mbv2-cifar", width=2.0)
    tokens = str(base.sample(seed=0)[0])
    a = measure_costs(base.build(base.parse(tokens)), base.input_shape())
    b = measure_costs(wide.build(wide.parse(tokens)), wide.input_shape())
    assert b.intensity > a.intensity
    assert b.mult_adds > 3 * a.mult_adds


def test_training_mode_is_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    measure_costs(net, (1, 3, 8, 8))
    assert net.training

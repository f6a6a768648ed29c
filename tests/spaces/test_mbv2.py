import torch

from edgenas.nn import MBConv
from edgenas.spaces import get_space


def test_layout_matches_thesis_table_3_1():
    space = get_space("mbv2")
    shapes = space.layer_shapes
    assert len(shapes) == 21
    assert [s.out_channels for s in shapes] == [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432]
    assert [s.stride for s in shapes if s.block == 1] == [2, 2, 2, 1, 2, 1]
    assert shapes[0].in_channels == 24
    net = space.build(space.make_spec(["k3e6"] * 21))
    assert net.stem[0].conv.out_channels == 40 and net.stem[0].conv.stride == (2, 2)
    assert isinstance(net.stem[1], MBConv) and net.stem[1].expansion == 1 and net.stem[1].out_channels == 24
    assert net.head.conv.out_channels == 1728
    assert net.classifier[-1].out_features == 1000


def test_skip_is_masked_exactly_where_the_shape_changes():
    space = get_space("mbv2")
    no_skip = [i for i, ops in enumerate(space.allowed_ops) if len(ops) == 6]
    assert no_skip == [0, 4, 8, 12, 16, 20]
    assert space.size() == 7**15 * 6**6


def test_cifar_preset_ends_on_a_4x4_map_and_width_scales_every_layer():
    space = get_space("mbv2-cifar")
    net = space.build(space.sample(seed=0)[0]).eval()
    with torch.no_grad():
        assert net.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 1728, 4, 4)
    half = get_space("mbv2-cifar", width=0.5)
    assert [s.out_channels for s in half.layer_shapes][:5] == [16, 16, 16, 16, 32]
    assert half.build(half.sample(seed=0)[0]).head.conv.out_channels == 864


def test_skip_layers_are_identities_and_mbconv_has_a_residual_only_when_shapes_match():
    space = get_space("mbv2-cifar")
    tokens = ["k5e3"] * 21
    tokens[1] = "skip"
    net = space.build(space.parse("-".join(tokens)))
    assert isinstance(net.layers[1], torch.nn.Identity)
    assert not net.layers[0].use_residual and net.layers[2].use_residual
    assert net.layers[2].depthwise.conv.kernel_size == (5, 5) and net.layers[2].expand.conv.out_channels == 96

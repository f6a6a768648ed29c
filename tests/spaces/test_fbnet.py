"""The FBNet space against HELP's 5,000 measured architectures (HW-NAS-Bench's layout)."""

from __future__ import annotations

import torch

from conftest import read_table
from edgenas.nn import MBConv
from edgenas.spaces import get_space


def help_rows(data_dir):
    return read_table(data_dir, "help/help_fbnet_latency.csv")


def test_every_help_string_parses_and_agrees_with_op_idx(data_dir):
    space = get_space("fbnet")
    rows = help_rows(data_dir)
    assert len(rows) == 5000
    for row in rows:
        spec = space.parse(row["blocks"])
        assert list(spec.choices) == [int(i) for i in row["op_idx"].split("-")]
        assert str(spec) == row["blocks"]
        assert space.from_one_hot(space.one_hot(spec)) == spec


def test_a_sample_of_help_archs_builds_and_runs(data_dir):
    space = get_space("fbnet")
    rows = help_rows(data_dir)
    for row in rows[:: len(rows) // 4]:
        net = space.build(space.parse(row["blocks"])).eval()
        with torch.no_grad():
            assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_layout_and_ops():
    space = get_space("fbnet")
    assert space.num_layers == 22 and space.size() == 9**22
    assert [s.stride for s in space.layer_shapes if s.block == 1] == [1, 1, 2, 2, 1, 2, 1]
    net = space.build(space.make_spec(["k3_e1_g2"] + ["skip"] * 21))
    first = net.layers[0]
    assert isinstance(first, MBConv) and first.expand.conv.groups == 2 and first.project.conv.groups == 2
    assert first.expand.conv.out_channels == 16  # FBNet keeps the expand conv at e1
    assert isinstance(net.layers[1], torch.nn.Sequential)  # skip where 16 -> 24 channels is a 1x1 projection
    assert isinstance(net.layers[2], torch.nn.Identity)
    assert net.head.conv.out_channels == 1504
    with torch.no_grad():
        assert net.eval().forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)

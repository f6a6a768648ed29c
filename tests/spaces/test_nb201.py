"""The NAS-Bench-201 space against the benchmark's own table: strings, indices and parameter counts."""

from __future__ import annotations

import pytest

from conftest import read_table
from edgenas.errors import ArchError
from edgenas.nn.costs import count_params
from edgenas.spaces import get_space


def table(data_dir):
    return read_table(data_dir, "nb201/nb201_cifar10_200ep.csv")


def test_all_15625_indices_and_strings_match_the_benchmark(data_dir):
    space = get_space("nb201")
    rows = table(data_dir)
    assert len(rows) == 15625 == space.size()
    seen = set()
    for row in rows:
        index, arch = int(row["index"]), row["arch_str"]
        spec = space.parse(arch)
        assert str(spec) == arch
        assert space.index(spec) == index
        assert space.from_index(index) == spec
        seen.add(spec)
    assert len(seen) == 15625


def test_parameter_counts_match_the_benchmark_exactly(data_dir):
    space = get_space("nb201")
    rows = table(data_dir)
    for row in rows[::521]:  # 30 cells spread over the table
        net = space.build(space.parse(row["arch_str"]))
        assert count_params(net) == round(float(row["cifar10_params_M"]) * 1e6), row["arch_str"]


def test_known_cell_and_bad_index():
    space = get_space("nb201")
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert str(space.from_index(6111)) == best  # the benchmark's best CIFAR-10 cell (shared/data README)
    with pytest.raises(ArchError, match=r"outside 0\.\.15624"):
        space.from_index(15625)


def test_none_edges_are_left_out_and_a_dead_cell_outputs_zeros():
    import torch

    space = get_space("nb201", channels=4, cells_per_stage=1)
    dead = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    net = space.build(dead).eval()
    assert len(net.cells[0].edges) == 0
    with torch.no_grad():
        out = net.cells[0](torch.randn(1, 4, 8, 8))
    assert torch.count_nonzero(out) == 0

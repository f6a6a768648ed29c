"""The channel space of a found net: the all-1 configuration is the base network, scales reach the hidden channels,
skip layers keep theirs, and its specs rebuild, encode, cost, export and profile like any space's."""

from __future__ import annotations

import json

import pytest
import torch

from edgenas.errors import ArchError, SpaceConfigError
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.measure import profile
from edgenas.hardware.runtimes import get_runtime
from edgenas.nn.blocks import MBConv, make_divisible
from edgenas.nn.costs import measure_costs
from edgenas.spaces import get_space, space_of, spec_from_json, spec_to_json
from edgenas.spaces.channels import SCALES, channel_space

BASE = get_space("mbv2-cifar", width=0.25, resolution=16)
ARCH = BASE.parse(
    "k3e3-skip-k5e6-k7e3-k3e6-skip-skip-k5e3-k3e3-k3e3-k3e3-k3e3-k3e3-k3e3-k3e3-skip-k3e3-k3e3-k3e3-k3e3-k3e6"
)


@pytest.fixture(scope="module")
def space():
    return channel_space(ARCH)


def test_the_unscaled_configuration_is_the_base_network(space):
    assert space.num_layers == 21 and space.op_names == tuple(f"x{s:g}" for s in SCALES)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = BASE.build(ARCH).eval()
        torch.manual_seed(0)
        same = space.build(space.unscaled).eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(base(x), same(x))


def test_scales_reach_the_hidden_channels_and_skip_layers_keep_theirs(space):
    skips = [i for i, c in enumerate(ARCH.choices) if BASE.op_names[c] == "skip"]
    assert all(space.allowed_ops[i] == (SCALES.index(1.0),) for i in skips)
    with pytest.raises(ArchError, match="has no hidden channels"):
        space.make_spec(["x1"] + ["x2"] * 20)
    spec = space.sample(seed=3)[0]
    net = space.build(spec)
    for layer, (module, scale) in enumerate(zip(net.layers, space.scales(spec), strict=True)):
        if isinstance(module, MBConv):
            shape = BASE.layer_shapes[layer]
            assert module.depthwise[0].out_channels == make_divisible(shape.in_channels * module.expansion * scale)
    macs = [measure_costs(space.build(space.uniform(s)), space.input_shape()).mult_adds for s in SCALES]
    assert macs == sorted(macs) and macs[-1] > 1.5 * macs[SCALES.index(1.0)]


def test_specs_rebuild_anywhere_and_the_options_hash_canonically(space):
    spec = space.sample(seed=5)[0]
    back = spec_from_json(spec_to_json(spec))
    assert space_of(back) is space and back == spec
    options = dict(space.options)
    reordered = json.dumps(dict(reversed(json.loads(options["base_options"]).items())), indent=2)
    same = get_space("channels", base=options["base"], arch=options["arch"], base_options=reordered)
    assert same.config_hash == space.config_hash
    assert space.one_hot(spec).shape == (21, 7) and space.from_one_hot(space.one_hot(spec)) == spec
    with pytest.raises(SpaceConfigError, match="no per-layer channels"):
        get_space("channels", base="nb201", base_options='{"channels": 4}')
    with pytest.raises(SpaceConfigError, match="not JSON"):
        get_space("channels", base_options="{width")


def test_channel_configurations_profile_into_a_store(space, tmp_path):
    specs = space.sample(seed=1, n=2)
    runtime = get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=16, threads=1))
    with MeasurementStore(tmp_path / "s.sqlite") as db:
        report = profile(specs, runtime, db, device_name="here")
        values = db.values("here", metric="latency_ms")
    assert report.measured == 2
    assert set(values) == {(s.space_hash, str(s)) for s in specs} and all(v > 0 for v in values.values())

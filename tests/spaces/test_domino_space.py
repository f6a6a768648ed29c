"""The grafting-mask space: masks <-> specs <-> encodings, the grafted training form, and the collapsed form runtimes
measure."""

from __future__ import annotations

import pytest
import torch

from edgenas.errors import ArchError, SpaceConfigError
from edgenas.models import load_model
from edgenas.nn import GraftedBlock
from edgenas.nn.reparam import collapsed_copy
from edgenas.nn.testing import randomize_batchnorm
from edgenas.spaces import get_space, space_of, spec_from_dict, spec_to_dict
from edgenas.spaces.domino import GRAFT, KEEP, MaskSpace, mask_space


@pytest.fixture(scope="module")
def space() -> MaskSpace:
    base = get_space("mbv2-cifar", width=0.25).sample(0)[0]
    return mask_space({"arch": spec_to_dict(base)})


def test_masks_round_trip_through_specs_and_encodings(space) -> None:
    assert space.op_names[GRAFT] == "graft" and space.op_names[KEEP] == "keep"
    for spec in [*space.sample(seed=3, n=5), space.graft_all(), space.keep_all()]:
        mask = space.format(spec)
        assert mask == "".join(str(c) for c in spec.choices) and set(mask) <= {"0", "1"}
        assert space.parse(mask) == spec
        one_hot = space.one_hot(spec)
        assert one_hot.shape == (space.num_layers, 2) and torch.equal(
            one_hot[:, KEEP], torch.tensor(spec.choices).float()
        )
        assert space.from_one_hot(one_hot) == spec
        again = spec_from_dict(spec_to_dict(spec))  # a spec file rebuilds the same space anywhere
        assert space_of(again).config_hash == space.config_hash and again == spec
    assert space.parse("all") == space.graft_all() and space.parse("none") == space.keep_all()
    with pytest.raises(ArchError, match="graftable blocks"):
        space.parse("01")


def test_build_grafts_exactly_the_zeros_and_runtimes_see_one_conv_per_graft(space) -> None:
    spec = space.parse("01" * (space.num_layers // 2) + "0" * (space.num_layers % 2))
    model = space.build(spec)
    grafted = [m for m in model.modules() if isinstance(m, GraftedBlock)]
    assert len(grafted) == spec.choices.count(GRAFT)
    randomize_batchnorm(model)
    deployed = collapsed_copy(model)
    assert not any(isinstance(m, GraftedBlock) for m in deployed.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, got = model.eval()(x), deployed(x)
    assert torch.allclose(expected, got, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    ungrafted = space.build(space.keep_all())
    assert collapsed_copy(ungrafted) is ungrafted  # nothing to collapse: no copy on the runtimes' hot path


def test_torchvision_networks_and_width_multipliers() -> None:
    mbv2 = get_space("domino", model="torchvision:mobilenet_v2", resolution=32)
    assert mbv2.num_layers == 17 and mbv2.resolution == 32
    assert mask_space(load_model("torchvision:resnet50", num_classes=10).recipe).num_layers == 16
    narrow = mask_space(load_model("torchvision:mobilenet_v2?width_mult=0.5", num_classes=10, resolution=32).recipe)
    assert narrow.config_hash != mbv2.config_hash and narrow.num_layers == 17
    with pytest.raises(SpaceConfigError, match="model"):
        get_space("domino", model="mobilenet")
    grafted = load_model("torchvision:mobilenet_v2", num_classes=10)
    from edgenas.models import graft_loaded

    with pytest.raises(SpaceConfigError, match="grafted already"):
        mask_space(graft_loaded(grafted, "all").recipe)

import pytest

from edgenas.errors import DuplicateSpaceError, SpaceConfigError, UnknownSpaceError
from edgenas.spaces import get_space, list_spaces, register_space


def test_the_four_spaces_are_registered():
    assert {"mbv2", "mbv2-cifar", "fbnet", "nb201"} <= set(list_spaces())
    assert list_spaces("mbv2*") == ["mbv2", "mbv2-cifar"]


def test_duplicate_name_is_refused():
    with pytest.raises(DuplicateSpaceError, match="mbv2"):
        register_space("mbv2")(lambda **kw: None)


def test_unknown_space_lists_known_ones():
    with pytest.raises(UnknownSpaceError, match="known spaces: channels, domino, fbnet, mbv2"):
        get_space("mbv3")


def test_unknown_option_is_refused_with_the_option_names():
    with pytest.raises(SpaceConfigError, match=r"unknown option.*depth.*options:.*width"):
        get_space("mbv2", depth=2)


def test_same_arguments_give_the_same_cached_space_and_options_change_the_hash():
    assert get_space("mbv2-cifar") is get_space("mbv2-cifar")
    assert get_space("mbv2-cifar", width=0.5).config_hash != get_space("mbv2-cifar").config_hash
    # the preset is only a preset: the same options give the same configuration hash
    same = get_space("mbv2", resolution=32, num_classes=10, stem_stride=1, stage_strides=[1, 2, 2, 1, 2, 1])
    assert same.config_hash == get_space("mbv2-cifar").config_hash


@pytest.mark.parametrize(
    ("space", "options"),
    [
        ("mbv2", {"stage_strides": [2, 2]}),
        ("mbv2", {"width": 0}),
        ("mbv2", {"stem_stride": 3}),
        ("fbnet", {"stage_strides": [1]}),
        ("nb201", {"channels": 0}),
        ("mbv2", {"resolution": 16}),
    ],
)
def test_invalid_options_raise(space, options):
    with pytest.raises(SpaceConfigError):
        get_space(space, **options)

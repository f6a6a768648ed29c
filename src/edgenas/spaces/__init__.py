"""Search spaces: the registry, the arch spec type, encodings and the standalone network builders.

>>> from edgenas.spaces import get_space
>>> space = get_space("mbv2-cifar")
>>> spec = space.sample(seed=0)[0]
>>> net = space.build(spec)
"""

from torch import nn

from edgenas.spaces import channels as _channels  # noqa: F401  (registers "channels")
from edgenas.spaces import domino as _domino  # noqa: F401  (registers "domino")
from edgenas.spaces import fbnet as _fbnet  # noqa: F401  (registers "fbnet")
from edgenas.spaces import mbv2 as _mbv2  # noqa: F401  (registers "mbv2", "mbv2-cifar")
from edgenas.spaces import nb201 as _nb201  # noqa: F401  (registers "nb201")
from edgenas.spaces._base import DERIVATION_RULES, LayerwiseSpace, SearchSpace
from edgenas.spaces._registry import get_space, list_spaces, register_space, space_of
from edgenas.spaces.encoding import GraphEncoding, graph_features
from edgenas.spaces.spec import (
    SPEC_FORMAT_VERSION,
    ArchSpec,
    load_specs,
    save_specs,
    spec_from_dict,
    spec_from_json,
    spec_to_dict,
    spec_to_json,
)

__all__ = [
    "DERIVATION_RULES",
    "SPEC_FORMAT_VERSION",
    "ArchSpec",
    "GraphEncoding",
    "LayerwiseSpace",
    "SearchSpace",
    "build",
    "get_space",
    "graph_features",
    "list_spaces",
    "load_specs",
    "register_space",
    "save_specs",
    "space_of",
    "spec_from_dict",
    "spec_from_json",
    "spec_to_dict",
    "spec_to_json",
]


def build(spec: ArchSpec) -> nn.Module:
    """A standalone ``nn.Module`` for ``spec`` built by the space it belongs to (train mode, random init)."""
    return space_of(spec).build(spec)

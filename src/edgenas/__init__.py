"""edgenas: hardware-aware neural architecture search and compression for a given device under a given budget.

The spaces' names are loaded on first use (PEP 562): ``import edgenas.errors`` or ``edgenas --help`` does not pay
for importing torch (about 1.5 s here).
"""

from __future__ import annotations

import importlib
from typing import Any

from edgenas.errors import EdgeNASError

__version__ = "0.1.0"

#: Public names loaded from :mod:`edgenas.spaces` when first read.
_FROM_SPACES = ("ArchSpec", "build", "get_space", "list_spaces")

__all__ = ["ArchSpec", "EdgeNASError", "__version__", "build", "get_space", "list_spaces"]


def __getattr__(name: str) -> Any:
    if name in _FROM_SPACES:
        return getattr(importlib.import_module("edgenas.spaces"), name)
    raise AttributeError(f"module 'edgenas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

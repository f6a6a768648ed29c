"""edgenas: hardware-aware neural architecture search and compression for a given device under a given budget."""

from edgenas.errors import EdgeNASError
from edgenas.spaces import ArchSpec, build, get_space, list_spaces

__version__ = "0.1.0"

__all__ = ["ArchSpec", "EdgeNASError", "__version__", "build", "get_space", "list_spaces"]

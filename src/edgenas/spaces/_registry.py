"""The registry of search spaces: one name, one factory, duplicates refused (as torchvision's ``register_model``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from edgenas.errors import DuplicateSpaceError, SpaceMismatchError, UnknownSpaceError
from edgenas.spaces.spec import ArchSpec, freeze

if TYPE_CHECKING:
    from edgenas.spaces._base import SearchSpace

SpaceFactory = Callable[..., "SearchSpace"]
F = TypeVar("F", bound=SpaceFactory)

_FACTORIES: dict[str, SpaceFactory] = {}


def register_space(name: str) -> Callable[[F], F]:
    """Decorator that registers ``factory(**options) -> SearchSpace`` under ``name``.

    Raises:
        DuplicateSpaceError: ``name`` is already registered.
    """

    def decorate(factory: F) -> F:
        if name in _FACTORIES:
            raise DuplicateSpaceError(f"search space {name!r} is already registered")
        _FACTORIES[name] = factory
        _cached_space.cache_clear()
        return factory

    return decorate


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _FACTORIES if fnmatch.fnmatch(n, pattern))


def get_space(name: str, **options: Any) -> SearchSpace:
    """The space ``name`` configured with ``options`` (instances are cached: same arguments, same object).

    Raises:
        UnknownSpaceError: ``name`` is not registered; the message lists the registered names.
        SpaceConfigError: an option is unknown or invalid.
    """
    if name not in _FACTORIES:
        raise UnknownSpaceError(f"unknown search space {name!r}; known spaces: {', '.join(list_spaces())}")
    frozen = tuple(sorted((k, freeze(v)) for k, v in options.items()))
    return _cached_space(name, frozen)


@lru_cache(maxsize=64)
def _cached_space(name: str, frozen_options: tuple[tuple[str, Any], ...]) -> SearchSpace:
    return _FACTORIES[name](**dict(frozen_options))


def space_of(spec: ArchSpec) -> SearchSpace:
    """The space a spec belongs to, checked against the spec's configuration hash.

    Raises:
        SpaceMismatchError: the registered space with the spec's options hashes differently.
    """
    space = get_space(spec.space, **dict(spec.options))
    if space.config_hash != spec.space_hash:
        raise SpaceMismatchError(
            f"spec of {spec.space} has space hash {spec.space_hash}, but the space with these options hashes to "
            f"{space.config_hash}"
        )
    return space

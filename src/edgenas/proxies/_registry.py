"""The registry of accuracy proxies: a name, a small interface, duplicates refused (as ``spaces`` does)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edgenas.errors import ProxyError
from edgenas.proxies.probe import Trace


@dataclass(frozen=True)
class ProxyScore:
    """A proxy's verdict on one network: ``value`` (higher is better) and the raw statistics it came from."""

    value: float
    stats: dict[str, Any] = field(default_factory=dict)


class Proxy(ABC):
    """An accuracy proxy read from a probe's :class:`Trace` at a training budget of ``epochs`` (0 = at init)."""

    #: Registered name.
    name: str = ""
    #: The fewest epochs of training the proxy needs (0: training-free).
    min_epochs: int = 0
    #: Whether it reads the Jacobian scores of the trace.
    needs_jacobian: bool = False

    def check_budget(self, epochs: int, trace: Trace) -> None:
        """Raise :class:`ProxyError` when ``epochs`` is below the proxy's minimum or beyond what ``trace`` holds."""
        if epochs < self.min_epochs:
            raise ProxyError(f"proxy {self.name} needs at least {self.min_epochs} epochs, got {epochs}")
        recorded = len(trace.jacobian) - 1 if self.needs_jacobian else trace.epochs
        if epochs > recorded:
            raise ProxyError(f"proxy {self.name}: the trace holds {recorded} epochs, asked for {epochs}")

    def score(self, trace: Trace, epochs: int | None = None) -> ProxyScore:
        """The score after ``epochs`` epochs (default: every epoch the trace holds for a trained proxy, 0 for a
        training-free one)."""
        epochs = (trace.epochs if self.min_epochs else 0) if epochs is None else epochs
        self.check_budget(epochs, trace)
        return self._score(trace, epochs)

    @abstractmethod
    def _score(self, trace: Trace, epochs: int) -> ProxyScore:
        """The score of an already checked budget."""


P = TypeVar("P", bound=type[Proxy])
_PROXIES: dict[str, Proxy] = {}


def register_proxy(name: str) -> Callable[[P], P]:
    """Class decorator registering one instance of the proxy under ``name``.

    Raises:
        ProxyError: ``name`` is already registered.
    """

    def decorate(cls: P) -> P:
        if name in _PROXIES:
            raise ProxyError(f"proxy {name!r} is already registered")
        instance = cls()
        instance.name = name
        _PROXIES[name] = instance
        return cls

    return decorate


def list_proxies() -> list[str]:
    """Registered proxy names, sorted."""
    return sorted(_PROXIES)


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name``.

    Raises:
        ProxyError: no such proxy; the message lists the registered names.
    """
    if name not in _PROXIES:
        raise ProxyError(f"unknown proxy {name!r}; proxies: {', '.join(list_proxies())}")
    return _PROXIES[name]

"""Accuracy proxies: scores that rank architectures by how well they will train, at a tiny fraction of a training.

>>> from edgenas.proxies import get_proxy, probe_spec, proxy_batches, ProbeSettings
>>> trace = probe_spec(spec, proxy_batches(data, 1280, 64), ProbeSettings(epochs=3))
>>> get_proxy("bte").score(trace).value

Registered: ``bte`` (thesis Definition 4.1), ``tse`` and ``tse-e`` (Ru et al. 2021), ``jacobian`` (Mellor et al.
2021). A new proxy subclasses :class:`Proxy` and registers with :func:`register_proxy`.
"""

from edgenas.proxies import scores as _scores  # noqa: F401  (registers the proxies)
from edgenas.proxies._registry import Proxy, ProxyScore, get_proxy, list_proxies, register_proxy
from edgenas.proxies.evaluate import probe_spec, proxy_batches, settings_for
from edgenas.proxies.probe import ProbeSettings, Trace, jacobian_score, probe
from edgenas.proxies.scores import bte

__all__ = [
    "ProbeSettings",
    "Proxy",
    "ProxyScore",
    "Trace",
    "bte",
    "get_proxy",
    "jacobian_score",
    "list_proxies",
    "probe",
    "probe_spec",
    "proxy_batches",
    "register_proxy",
    "settings_for",
]

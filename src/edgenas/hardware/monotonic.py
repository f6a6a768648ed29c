"""Performance monotonicity between devices (thesis Def 3.1, Fig 3.12).

Two devices are monotonic over a set of architectures when ``LAT_a = gamma * LAT_b`` for all of them. For measured
latencies we fit gamma by least squares through the origin (``gamma = sum(a b) / sum(b^2)``), report the fit's R^2
(``1 - sum((a - gamma b)^2) / sum((a - mean a)^2)``), and the rank agreement (Kendall tau-b, Spearman rho), which is
what a search that ranks architectures needs. Devices are grouped so that within a group every pair has tau >= a
threshold (complete linkage): one search then serves the whole group (the thesis' Hardware-C1/C2/C3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sstats

from edgenas.errors import MeasurementError

MIN_COMMON = 3


@dataclass(frozen=True)
class Monotonicity:
    """Agreement of device A's and device B's values over their common architectures."""

    n: int
    gamma: float
    r2: float
    kendall_tau: float
    spearman: float

    def as_dict(self) -> dict[str, float]:
        """JSON-ready dict."""
        return asdict(self)


def monotonicity(a: Sequence[float], b: Sequence[float]) -> Monotonicity:
    """Fit ``a ~ gamma * b`` through the origin and measure rank agreement.

    Raises:
        MeasurementError: fewer than 3 pairs, or lengths differ.
    """
    x, y = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
    if len(x) != len(y):
        raise MeasurementError(f"value lists differ in length ({len(y)} vs {len(x)})")
    if len(x) < MIN_COMMON:
        raise MeasurementError(f"monotonicity needs at least {MIN_COMMON} common architectures, got {len(x)}")
    gamma = float((x * y).sum() / (x * x).sum())
    ss_res = float(((y - gamma * x) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    tau = float(sstats.kendalltau(y, x).statistic)
    rho = float(sstats.spearmanr(y, x).statistic)
    return Monotonicity(len(x), gamma, r2, tau, rho)


def compare_devices(a: Mapping[tuple[str, str], float], b: Mapping[tuple[str, str], float]) -> Monotonicity:
    """Monotonicity over the architectures both value maps hold (keys are ``(space_hash, arch)``)."""
    common = sorted(set(a) & set(b))
    if len(common) < MIN_COMMON:
        raise MeasurementError(
            f"the devices share {len(common)} architectures; monotonicity needs at least {MIN_COMMON} (are they "
            "measured on the same space?)"
        )
    return monotonicity([a[k] for k in common], [b[k] for k in common])


def group_devices(names: Sequence[str], tau: Mapping[tuple[str, str], float], threshold: float) -> list[list[str]]:
    """Greedy complete-linkage grouping: a device joins the first group whose every member has tau >= ``threshold``
    with it (pairs missing from ``tau`` never group); devices are visited in the given order."""
    groups: list[list[str]] = []
    for name in names:
        for group in groups:
            if all(tau.get((name, m), tau.get((m, name), -1.0)) >= threshold for m in group):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups

"""Where predictor training data comes from: the measurement store, or any CSV table of (arch, value) rows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.errors import MeasurementError, StoreError
from edgenas.spaces import ArchSpec, SearchSpace


@dataclass
class ArchTable:
    """Architectures of one space with one measured value each.

    Attributes:
        space: the search space.
        specs: the architectures.
        values: their values (ms or mJ), positive.
        metric: ``latency_ms`` or ``energy_mJ``.
        device: where the values come from (store device name, or ``file:column``).
        fingerprint: the device description when known.
        skipped: rows left out, by reason.
        level: where the values were read at a device's level (issue 30): ``reference`` (the arch timed beside
            them) and ``nominal_ms`` (its latency at that level); empty for values as measured.
    """

    space: SearchSpace
    specs: list[ArchSpec]
    values: np.ndarray
    metric: str
    device: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    level: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.specs)

    def subset(self, indices: np.ndarray) -> ArchTable:
        """The rows at ``indices``."""
        return ArchTable(
            self.space,
            [self.specs[i] for i in indices],
            self.values[indices],
            self.metric,
            self.device,
            self.fingerprint,
            {},
            self.level,
        )

    def split(self, train_size: int | float, seed: int = 0) -> tuple[ArchTable, ArchTable]:
        """A seeded random split: ``train_size`` rows (or that fraction) for training, the rest for testing.

        Raises:
            MeasurementError: the split leaves fewer than 2 rows on a side.
        """
        n = len(self)
        k = round(train_size * n) if isinstance(train_size, float) and train_size < 1 else int(train_size)
        if not 2 <= k <= n - 2:
            raise MeasurementError(f"train size {train_size} leaves too few of the {n} rows for training or testing")
        order = np.random.default_rng(seed).permutation(n)
        return self.subset(np.sort(order[:k])), self.subset(np.sort(order[k:]))


def table_from_csv(
    path: str | os.PathLike[str],
    space: SearchSpace,
    arch_column: str,
    target: str,
    metric: str = "latency_ms",
    *,
    where: Mapping[str, str] | None = None,
) -> ArchTable:
    """Rows of a CSV whose ``arch_column`` parses in ``space`` and whose ``target`` is a positive number.

    ``where`` keeps only rows whose columns equal the given values (e.g. ``{"device": "this-cpu"}`` for a store
    export holding several devices); the others are counted as ``filtered out``.

    Raises:
        StoreError: the file cannot be read or lacks a column.
        MeasurementError: no usable row.
    """
    from edgenas.hardware.store_import import DEVICE_COLUMN, pick_device_rows, read_csv

    file = Path(path)
    header, rows = read_csv(file)
    missing = [c for c in (arch_column, target, *(where or {})) if c not in header]
    if missing:
        raise StoreError(f"{file}: missing column(s) {', '.join(missing)}; columns: {', '.join(header)}")
    device = (where or {}).get(DEVICE_COLUMN)
    picked = pick_device_rows(file, header, rows, None if device is None else str(device))  # one device, or an error
    specs, values = [], []
    skipped = {"bad arch": 0, "empty or non-positive target": 0}
    if where:
        skipped["filtered out"] = len(rows) - len(picked)
    rows = picked
    for row in rows:
        if where and any(row[k] != str(v) for k, v in where.items()):
            skipped["filtered out"] += 1
            continue
        try:
            value = float(row[target])
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value < float("inf"):
            skipped["empty or non-positive target"] += 1
            continue
        try:
            specs.append(space.parse(row[arch_column]))
        except Exception:  # ArchError or a malformed cell
            skipped["bad arch"] += 1
            continue
        values.append(value)
    if not specs:
        raise MeasurementError(f"{file}: no row with a valid {space.name} arch and a positive {target}")
    return ArchTable(space, specs, np.asarray(values), metric, f"{file.name}:{target}", {"source": str(file)}, skipped)


def table_from_store(
    store_path: str | os.PathLike[str],
    device: str,
    space: SearchSpace,
    *,
    metric: str = "latency_ms",
    runtime: str | None = None,
    batch: int | None = None,
    resolution: int | None = None,
    threads: int | None = None,
    raw: bool = False,
    level_ms: float | None = None,
) -> ArchTable:
    """A device's values for ``space`` (rows of other spaces or configurations are left out): latencies at the
    device's nominal level (or at ``level_ms``) where a reference was timed beside them, else as measured; ``raw``:
    all as measured.

    Raises:
        StoreError: unknown device, or several rows per arch (filter by runtime/batch/resolution/threads).
        MeasurementError: no value of this space.
    """
    from edgenas.hardware.store import MeasurementStore

    with MeasurementStore(store_path, create=False) as db:
        values = db.values(
            device,
            metric=metric,
            space_hash=space.config_hash,
            runtime=runtime,
            batch=batch,
            resolution=resolution,
            threads=threads,
            raw=raw,
            level_ms=level_ms,
        )
        fingerprint = next((d["fingerprint"] for d in db.devices() if d["name"] == device), {})
        filters = {"runtime": runtime, "batch": batch, "resolution": resolution, "threads": threads}
        level = {} if raw else _level_of(db, device, metric, filters, level_ms)
    if not values:
        filters = {"runtime": runtime, "batch": batch, "resolution": resolution, "threads": threads}
        where = ", ".join(f"{k} {v}" for k, v in filters.items() if v is not None)
        raise MeasurementError(
            f"{device} has no {metric} values for {space.name} (hash {space.config_hash})"
            + (f" with {where}" if where else "")
        )
    items = sorted(values.items())
    specs = [space.parse(arch) for (_, arch), _ in items]
    return ArchTable(space, specs, np.asarray([v for _, v in items]), metric, device, fingerprint, {}, level)


def _level_of(db: Any, device: str, metric: str, filters: dict[str, Any], level_ms: float | None) -> dict[str, Any]:
    """The level a table's latencies were read at: the reference the device's sessions (matching the key
    ``filters``) timed and its nominal level, or ``level_ms`` where given; empty where the sessions time several
    references or keys, or none."""
    from edgenas.hardware.store import MeasurementKey

    fields = ("runtime", "batch", "resolution", "threads")
    sessions = [s for s in db.levels(device) if all(filters[k] is None or s[k] == filters[k] for k in fields)]
    kinds = {(s["reference"], *(s[k] for k in fields)) for s in sessions}
    if len(kinds) != 1 or metric != "latency_ms":
        return {}
    reference, runtime, *key = kinds.pop()
    nominal = (
        level_ms if level_ms is not None else db.nominal_level(device, MeasurementKey(runtime, metric, *key), reference)
    )
    return {"reference": reference, "nominal_ms": nominal}

"""Importing external tables (HW-NAS-Bench, HELP, any CSV of arch strings and values) into the measurement store:
the presets, reading a CSV (or refusing a store given where a table belongs), picking one device's rows, and
writing each value column as a device of its own (runtime ``imported``)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.errors import StoreError
from edgenas.hardware.store import SQLITE_MAGIC, MeasurementKey, MeasurementStore
from edgenas.spaces import ArchSpec, SearchSpace


@dataclass(frozen=True)
class ImportColumn:
    """One value column of an external table: the device it belongs to and the metric it holds."""

    column: str
    device: str
    metric: str = "latency_ms"


#: Known tables: detected by their arch column and value columns. Units as in the sources (ms, mJ).
PRESETS: dict[str, dict[str, Any]] = {
    "hwnasbench-nb201": {
        "space": "nb201",
        "arch_column": "arch_str",
        "columns": [
            ImportColumn("cifar10_edgegpu_latency_ms", "hwnasbench-edgegpu"),
            ImportColumn("cifar10_edgegpu_energy_mJ", "hwnasbench-edgegpu", "energy_mJ"),
            ImportColumn("cifar10_raspi4_latency_ms", "hwnasbench-raspi4"),
        ],
        "source": "HW-NAS-Bench (Li et al., ICLR 2021), CIFAR-10 input, batch 1",
    },
    "help-fbnet": {
        "space": "fbnet",
        "arch_column": "blocks",
        "columns": [
            ImportColumn("raspi4_ms", "help-raspi4"),
            ImportColumn("gold_6226_ms", "help-gold6226"),
            ImportColumn("titan_rtx_1_ms", "help-titanrtx"),
        ],
        "source": "HELP (Lee et al., NeurIPS 2021), FBNet space, batch 1",
    },
}


def detect_preset(header: Sequence[str]) -> str | None:
    """The preset whose arch column and value columns all appear in ``header``."""
    for name, preset in PRESETS.items():
        needed = {preset["arch_column"], *(c.column for c in preset["columns"])}
        if needed <= set(header):
            return name
    return None


@dataclass(frozen=True)
class ImportReport:
    """What an import did: rows read, values added, rows skipped (with the reason counts)."""

    rows: int
    added: int
    skipped: dict[str, int]
    devices: list[str]


#: The column of a store export (``edgenas store export``) that names each row's device.
DEVICE_COLUMN = "device"


@dataclass(frozen=True)
class ParsedTable:
    """A CSV table read and checked whole, ready to be written into a store (:func:`read_table`)."""

    path: Path
    rows: int
    values: dict[str, list[tuple[ArchSpec, MeasurementKey, float]]]  # device -> (arch, key, value)
    skipped: dict[str, int]


def read_csv(file: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file, with a :class:`StoreError` for anything that is not one."""
    if _is_sqlite(file):  # older edgenas took the store as a positional argument
        raise StoreError(
            f"{file} is a measurement store (SQLite), not a table: name a store with --store, and give a CSV table "
            "(or runner results.json) as the argument"
        )
    try:
        with file.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise StoreError(f"{file} is not a text CSV file (byte {exc.start} is not UTF-8)") from exc
    except csv.Error as exc:
        raise StoreError(f"{file} is not a readable CSV file: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if not header:
        raise StoreError(f"{file} is empty: expected a CSV header line and rows")
    if "\x00" in "".join(header):
        raise StoreError(f"{file} is not a text CSV file (it holds NUL bytes)")
    return header, rows


def _is_sqlite(file: Path) -> bool:
    try:
        with file.open("rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def pick_device_rows(
    file: Path, header: list[str], rows: list[dict[str, str]], device: str | None
) -> list[dict[str, str]]:
    """The rows of one device when the table has a device column (a store export); all rows otherwise.

    Raises:
        StoreError: several devices and ``device`` is None (the message lists them), or no row of ``device``.
    """
    if DEVICE_COLUMN not in header:
        return rows
    names = sorted({r.get(DEVICE_COLUMN) or "" for r in rows})
    if device is None:
        if len(names) > 1:
            raise StoreError(
                f"{file} holds {len(names)} devices ({', '.join(names)}); pick one with --store-device NAME"
            )
        return rows
    picked = [r for r in rows if r.get(DEVICE_COLUMN) == device]
    if not picked:
        raise StoreError(f"{file} has no rows of device {device!r}; its devices: {', '.join(names) or 'none'}")
    return picked


def read_table(
    path: str | os.PathLike[str],
    space: SearchSpace,
    arch_column: str,
    columns: Sequence[ImportColumn],
    *,
    device: str | None = None,
    resolution: int | None = None,
) -> ParsedTable:
    """Read and check a whole CSV table before anything is written.

    Rows whose arch does not parse are skipped with a count; empty, non-numeric or non-positive values are skipped
    per value with a count. A table with a ``device`` column (a store export) keeps the rows of ``device``.

    Raises:
        StoreError: the file is missing, not a text CSV, empty, lacks a named column, holds several devices and
            ``device`` is None, or has no usable value at all.
    """
    file = Path(path)
    header, rows = read_csv(file)
    missing = [c for c in (arch_column, *(col.column for col in columns)) if c not in header]
    if missing:
        raise StoreError(f"{file}: missing column(s) {', '.join(missing)}; columns: {', '.join(header)}")
    rows = pick_device_rows(file, header, rows, device)
    skipped = {"bad arch": 0, "empty or non-positive value": 0, "not a number": 0}
    res = resolution or space.resolution
    values: dict[str, list[tuple[ArchSpec, MeasurementKey, float]]] = {col.device: [] for col in columns}
    for row in rows:
        try:
            spec = space.parse(row[arch_column])
        except Exception:  # an ArchError, or a malformed cell
            skipped["bad arch"] += 1
            continue
        for col in columns:
            cell = (row.get(col.column) or "").strip()
            try:
                value = float(cell) if cell else float("nan")
            except ValueError:
                skipped["not a number"] += 1
                continue
            if not (value > 0 and value != float("inf")):
                skipped["empty or non-positive value"] += 1
                continue
            values[col.device].append((spec, MeasurementKey("imported", col.metric, 1, res, 0), value))
    if not any(values.values()):
        reasons = ", ".join(f"{v} {k}" for k, v in skipped.items() if v) or "no rows"
        raise StoreError(f"{file}: no usable value in {len(rows)} row(s) ({reasons}); nothing imported")
    return ParsedTable(file, len(rows), values, skipped)


def write_table(store: MeasurementStore, table: ParsedTable, *, source: str) -> ImportReport:
    """Write a table read by :func:`read_table` into ``store`` as ``imported`` devices (one transaction each)."""
    added = 0
    for name, rows in table.values.items():
        device_id = store.device_id(
            name,
            kind="imported",
            source=f"{source} ({table.path.name})",
            fingerprint={"imported_from": table.path.name},
        )
        added += store.add_many(device_id, rows)
    return ImportReport(table.rows, added, table.skipped, sorted(table.values))


def import_table(
    store: MeasurementStore,
    path: str | os.PathLike[str],
    space: SearchSpace,
    arch_column: str,
    columns: Sequence[ImportColumn],
    *,
    source: str,
    device: str | None = None,
    resolution: int | None = None,
) -> ImportReport:
    """Import the value ``columns`` of a CSV table as devices of kind ``imported`` (:func:`read_table` then
    :func:`write_table`: the whole file is checked before the store changes).

    Raises:
        StoreError: see :func:`read_table`.
    """
    table = read_table(path, space, arch_column, columns, device=device, resolution=resolution)
    return write_table(store, table, source=source)

"""The measurement store: SQLite in WAL mode, one row per (device, arch, runtime, metric, batch, resolution,
threads), committed as soon as it is measured, so that profiling can be killed and resumed and two processes can
write at once.

Tables:

* ``devices``: name (unique), kind (``measured`` or ``imported``), fingerprint (JSON), source.
* ``archs``: space name, space configuration hash, arch string (unique per hash and string).
* ``measurements``: the key above plus ``value`` (median; ms for ``latency_ms``, mJ for ``energy_mJ``), ``iqr``,
  ``mean``, ``min``, ``n``, ``flagged`` and ``created_at``.

External tables (HW-NAS-Bench, HELP) are imported as devices of their own (runtime ``imported``), so predictors
train on them through the same path as on local measurements.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgenas._io import atomic_output
from edgenas.errors import StoreError
from edgenas.spaces import ArchSpec, SearchSpace

SCHEMA_VERSION = 1
METRICS = ("latency_ms", "energy_mJ")
#: The first bytes of every SQLite 3 database file (how a store given where a table is expected is recognised).
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    source TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archs (
    id INTEGER PRIMARY KEY,
    space TEXT NOT NULL,
    space_hash TEXT NOT NULL,
    arch TEXT NOT NULL,
    UNIQUE (space_hash, arch)
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    arch_id INTEGER NOT NULL REFERENCES archs(id),
    runtime TEXT NOT NULL,
    metric TEXT NOT NULL,
    batch INTEGER NOT NULL,
    resolution INTEGER NOT NULL,
    threads INTEGER NOT NULL,
    value REAL NOT NULL,
    iqr REAL,
    mean REAL,
    min REAL,
    n INTEGER,
    flagged INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (device_id, arch_id, runtime, metric, batch, resolution, threads)
);
CREATE INDEX IF NOT EXISTS measurements_by_device ON measurements (device_id, metric);
"""


@dataclass(frozen=True)
class MeasurementKey:
    """What a measurement is of: everything but the value."""

    runtime: str
    metric: str = "latency_ms"
    batch: int = 1
    resolution: int = 32
    threads: int = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class MeasurementStore:
    """A measurement store in one SQLite file (see the module docstring). Use as a context manager or ``close()``.

    Raises:
        StoreError: the file cannot be created or opened, is not a database, or has another schema.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"no measurement store at {self.path}")
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create folder {self.path.parent}: {exc.strerror or exc}") from exc
        try:
            # autocommit mode: every statement outside an explicit transaction is committed at once
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            if not create:
                self._check_is_store()
            self.db.execute("PRAGMA busy_timeout = 60000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.executescript(_SCHEMA)
            version = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) != SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version[0]}; this edgenas reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open measurement store {self.path}: {exc}") from exc

    def _check_is_store(self) -> None:
        """Refuse (before writing anything) a file that SQLite opens but that edgenas did not create."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            self.db.close()
            what = "an empty file" if self.path.stat().st_size == 0 else "an SQLite file of other tables"
            raise StoreError(f"{self.path} is not an edgenas measurement store ({what})")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    # ----- devices and archs -----------------------------------------------------------------------------------------
    def device_id(
        self, name: str, *, kind: str = "measured", fingerprint: dict[str, Any] | None = None, source: str | None = None
    ) -> int:
        """The id of device ``name``, registering it when new."""
        self._execute(
            "INSERT OR IGNORE INTO devices (name, kind, fingerprint, source, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, kind, json.dumps(fingerprint or {}, sort_keys=True), source, _now()),
        )
        return int(self._execute("SELECT id FROM devices WHERE name = ?", (name,)).fetchone()[0])

    def devices(self) -> list[dict[str, Any]]:
        """Every device with its kind, source, fingerprint and measurement counts per metric."""
        rows = self._execute(
            "SELECT d.name, d.kind, d.source, d.fingerprint, m.metric, COUNT(m.id) FROM devices d "
            "LEFT JOIN measurements m ON m.device_id = d.id GROUP BY d.id, m.metric ORDER BY d.name"
        ).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for name, kind, source, fp, metric, count in rows:
            entry = out.setdefault(
                name, {"name": name, "kind": kind, "source": source, "fingerprint": json.loads(fp), "counts": {}}
            )
            if metric is not None:
                entry["counts"][metric] = count
        return list(out.values())

    def arch_id(self, spec: ArchSpec) -> int:
        """The id of ``spec``'s arch row, inserting it when new."""
        text = str(spec)
        self._execute(
            "INSERT OR IGNORE INTO archs (space, space_hash, arch) VALUES (?, ?, ?)",
            (spec.space, spec.space_hash, text),
        )
        return int(
            self._execute("SELECT id FROM archs WHERE space_hash = ? AND arch = ?", (spec.space_hash, text)).fetchone()[
                0
            ]
        )

    # ----- measurements ----------------------------------------------------------------------------------------------
    def has(self, device: int, spec: ArchSpec, key: MeasurementKey) -> bool:
        """True when the measurement is stored already."""
        row = self._execute(
            "SELECT 1 FROM measurements m JOIN archs a ON a.id = m.arch_id WHERE m.device_id = ? AND a.space_hash = ? "
            "AND a.arch = ? AND m.runtime = ? AND m.metric = ? AND m.batch = ? AND m.resolution = ? AND m.threads = ?",
            (device, spec.space_hash, str(spec), key.runtime, key.metric, key.batch, key.resolution, key.threads),
        ).fetchone()
        return row is not None

    def add(
        self,
        device: int,
        spec: ArchSpec,
        key: MeasurementKey,
        value: float,
        *,
        iqr: float | None = None,
        mean: float | None = None,
        minimum: float | None = None,
        n: int | None = None,
        flagged: bool = False,
    ) -> bool:
        """Store one measurement and commit it; returns False when the same key was stored already (kept as is)."""
        arch = self.arch_id(spec)
        cur = self._execute(
            "INSERT OR IGNORE INTO measurements (device_id, arch_id, runtime, metric, batch, resolution, threads, "
            "value, iqr, mean, min, n, flagged, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device,
                arch,
                key.runtime,
                key.metric,
                key.batch,
                key.resolution,
                key.threads,
                float(value),
                iqr,
                mean,
                minimum,
                n,
                int(flagged),
                _now(),
            ),
        )
        return cur.rowcount == 1

    def add_many(self, device: int, rows: Iterable[tuple[ArchSpec, MeasurementKey, float]]) -> int:
        """Store many values in one transaction (imports); returns how many were new."""
        added = 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for spec, key, value in rows:
                added += int(self.add(device, spec, key, value))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return added

    def values(
        self,
        device: str,
        *,
        metric: str = "latency_ms",
        space_hash: str | None = None,
        runtime: str | None = None,
        batch: int | None = None,
        resolution: int | None = None,
        threads: int | None = None,
    ) -> dict[tuple[str, str], float]:
        """``{(space_hash, arch): value}`` of a device's measurements matching the filters.

        Raises:
            StoreError: unknown device, or the filters leave several rows for one arch (say which runtime/batch).
        """
        if self._execute("SELECT 1 FROM devices WHERE name = ?", (device,)).fetchone() is None:
            known = ", ".join(d["name"] for d in self.devices()) or "none"
            raise StoreError(f"no device {device!r} in {self.path}; devices: {known}")
        sql = (
            "SELECT a.space_hash, a.arch, m.value FROM measurements m JOIN archs a ON a.id = m.arch_id "
            "JOIN devices d ON d.id = m.device_id WHERE d.name = ? AND m.metric = ?"
        )
        params: list[Any] = [device, metric]
        for column, value in (
            ("a.space_hash", space_hash),
            ("m.runtime", runtime),
            ("m.batch", batch),
            ("m.resolution", resolution),
            ("m.threads", threads),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        out: dict[tuple[str, str], float] = {}
        for h, arch, value in self._execute(sql, params):
            if (h, arch) in out:
                raise StoreError(
                    f"{device} has several {metric} rows per arch (different runtime, batch, resolution "
                    "or threads): filter with --runtime/--batch/--resolution/--threads"
                )
            out[(h, arch)] = value
        return out

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every measurement joined with its device and arch, in insertion order."""
        cur = self._execute(
            "SELECT d.name, a.space, a.space_hash, a.arch, m.runtime, m.metric, m.batch, m.resolution, m.threads, "
            "m.value, m.iqr, m.mean, m.min, m.n, m.flagged, m.created_at FROM measurements m "
            "JOIN devices d ON d.id = m.device_id JOIN archs a ON a.id = m.arch_id ORDER BY m.id"
        )
        names = [
            "device",
            "space",
            "space_hash",
            "arch",
            "runtime",
            "metric",
            "batch",
            "resolution",
            "threads",
            "value",
            "iqr",
            "mean",
            "min",
            "n",
            "flagged",
            "created_at",
        ]
        for row in cur:
            yield dict(zip(names, row, strict=True))

    def count(self) -> int:
        """Number of measurements."""
        return int(self._execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def export_csv(self, path: str | os.PathLike[str]) -> int:
        """Write every measurement to a CSV file (atomically); returns the row count."""
        n = 0
        with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
            writer = None
            for row in self.rows():
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                n += 1
        return n


# ----- importing external tables ------------------------------------------------------------------------------------
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

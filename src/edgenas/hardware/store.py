"""The measurement store: SQLite in WAL mode, one row per (device, arch, runtime, metric, batch, resolution,
threads), committed as soon as it is measured, so that profiling can be killed and resumed and two processes can
write at once.

Tables:

* ``devices``: name (unique), kind (``measured`` or ``imported``), fingerprint (JSON), source.
* ``archs``: space name, space configuration hash, arch string (unique per hash and string).
* ``measurements``: the key above plus ``value`` (median; ms for ``latency_ms``, mJ for ``energy_mJ``), ``iqr``,
  ``mean``, ``min``, ``n``, ``flagged``, ``created_at``; where it was measured beside a reference (issue 30), its
  ``session_id`` and ``relative`` value (its latency over the reference's, round by round).
* ``sessions``: one per measurement session that timed a reference beside what it measured: the device, the key
  (runtime, batch, resolution, threads), the ``reference`` (an arch string, or a label for a module), its space's
  hash (empty for a module) and the session's **level** (``level_ms``: the reference's median latency in it).

Levels: a device's **nominal level** for a key and a reference is the median of its sessions' levels.
:meth:`MeasurementStore.values` returns latencies *at the nominal level* (relative value x nominal level) where a
row has a relative value, so a row measured in a slow moment and one measured in a fast moment are in one unit;
``raw=True`` gives the milliseconds as measured. Rows without a session (stores written before schema 2, imported
tables) keep their milliseconds: their level is unknown.

External tables (HW-NAS-Bench, HELP) are imported as devices of their own (runtime ``imported``; see
:mod:`edgenas.hardware.store_import`), so predictors train on them through the same path as on local measurements.
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
from edgenas.spaces import ArchSpec

SCHEMA_VERSION = 2
#: Schema versions this edgenas reads (older ones are upgraded in place when opened).
READABLE_SCHEMAS = (1, 2)
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
    session_id INTEGER REFERENCES sessions(id),
    relative REAL,
    UNIQUE (device_id, arch_id, runtime, metric, batch, resolution, threads)
);
CREATE INDEX IF NOT EXISTS measurements_by_device ON measurements (device_id, metric);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    runtime TEXT NOT NULL,
    batch INTEGER NOT NULL,
    resolution INTEGER NOT NULL,
    threads INTEGER NOT NULL,
    reference TEXT NOT NULL,
    space_hash TEXT NOT NULL,
    level_ms REAL NOT NULL,
    created_at TEXT NOT NULL
);
"""
#: Schema 1 -> 2: the sessions table (created by the schema script) and the two columns of a measurement's session.
_UPGRADE_1_TO_2 = (
    "ALTER TABLE measurements ADD COLUMN session_id INTEGER REFERENCES sessions(id)",
    "ALTER TABLE measurements ADD COLUMN relative REAL",
)


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
            elif int(version[0]) not in READABLE_SCHEMAS:
                raise StoreError(f"{self.path} has schema version {version[0]}; this edgenas reads {SCHEMA_VERSION}")
            elif int(version[0]) < SCHEMA_VERSION:
                self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open measurement store {self.path}: {exc}") from exc

    def _upgrade(self) -> None:
        """Bring a schema-1 store to schema 2 in one transaction (its rows keep their milliseconds, level unknown)."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(measurements)")}
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _UPGRADE_1_TO_2:
                if statement.split()[5] not in columns:  # another process may have upgraded it a moment ago
                    self.db.execute(statement)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

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
        session: int | None = None,
        relative: float | None = None,
    ) -> bool:
        """Store one measurement and commit it; returns False when the same key was stored already (kept as is).
        ``session`` and ``relative``: the session (:meth:`add_session`) that timed a reference beside it, and its
        latency relative to that reference."""
        arch = self.arch_id(spec)
        cur = self._execute(
            "INSERT OR IGNORE INTO measurements (device_id, arch_id, runtime, metric, batch, resolution, threads, "
            "value, iqr, mean, min, n, flagged, created_at, session_id, relative) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                session,
                relative,
            ),
        )
        return cur.rowcount == 1

    # ----- sessions and levels ---------------------------------------------------------------------------------------
    def add_session(
        self, device: int, key: MeasurementKey, reference: str, level_ms: float, *, space_hash: str = ""
    ) -> int:
        """Record a measurement session of ``device`` that timed ``reference`` (an arch string of the space hashed
        ``space_hash``, or a module's label) at ``level_ms``; returns its id, for the rows measured in it.

        Raises:
            StoreError: the device's sessions of this key and space timed another reference (a device keeps one
                reference per space: levels of two references are not comparable).
        """
        known = self.reference(device, key, space_hash)
        if known is not None and known != reference:
            raise StoreError(
                f"this device's sessions in {self.path} time the reference {known!r}, not {reference!r}: "
                "levels of two references cannot be compared (use another store or device name)"
            )
        cur = self._execute(
            "INSERT INTO sessions (device_id, runtime, batch, resolution, threads, reference, space_hash, level_ms, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device, key.runtime, key.batch, key.resolution, key.threads, reference, space_hash, level_ms, _now()),
        )
        return int(cur.lastrowid or 0)

    def _device_number(self, device: int | str) -> int | None:
        if isinstance(device, int):
            return device
        row = self._execute("SELECT id FROM devices WHERE name = ?", (device,)).fetchone()
        return None if row is None else int(row[0])

    def _session_rows(
        self, device: int | str, key: MeasurementKey | None, space_hash: str | None = None, reference: str | None = None
    ) -> list[tuple[Any, ...]]:
        number = self._device_number(device)
        sql = (
            "SELECT created_at, level_ms, reference, space_hash, runtime, batch, resolution, threads FROM sessions "
            "WHERE device_id = ?"
        )
        params: list[Any] = [number]
        if key is not None:
            sql += " AND runtime = ? AND batch = ? AND resolution = ? AND threads = ?"
            params += [key.runtime, key.batch, key.resolution, key.threads]
        for column, value in (("space_hash", space_hash), ("reference", reference)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        return self._execute(sql + " ORDER BY id", params).fetchall()

    def reference(self, device: int | str, key: MeasurementKey, space_hash: str = "") -> str | None:
        """The reference the device's sessions of ``key`` and space time (the first one's), or None before any."""
        rows = self._session_rows(device, key, space_hash)
        return rows[0][2] if rows else None

    def levels(self, device: int | str, key: MeasurementKey | None = None) -> list[dict[str, Any]]:
        """The device's sessions (of ``key``, or of every key) in order: ``created_at``, ``level_ms``,
        ``reference``, ``space_hash``, ``runtime``, ``batch``, ``resolution``, ``threads``."""
        names = ("created_at", "level_ms", "reference", "space_hash", "runtime", "batch", "resolution", "threads")
        return [dict(zip(names, row, strict=True)) for row in self._session_rows(device, key)]

    def nominal_level(self, device: int | str, key: MeasurementKey, reference: str | None = None) -> float | None:
        """The device's nominal level for ``key`` (and ``reference``, where its sessions time several: one per
        space): the median of its sessions' levels (ms), None without any."""
        levels = sorted(row[1] for row in self._session_rows(device, key, reference=reference))
        if not levels:
            return None
        mid = len(levels) // 2
        return levels[mid] if len(levels) % 2 else (levels[mid - 1] + levels[mid]) / 2

    def unanchored(self, device: str, metric: str = "latency_ms") -> int:
        """How many of the device's rows of ``metric`` have no reference measured beside (level unknown)."""
        row = self._execute(
            "SELECT COUNT(*) FROM measurements m JOIN devices d ON d.id = m.device_id "
            "WHERE d.name = ? AND m.metric = ? AND m.relative IS NULL",
            (device, metric),
        ).fetchone()
        return int(row[0])

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
        raw: bool = False,
        level_ms: float | None = None,
    ) -> dict[tuple[str, str], float]:
        """``{(space_hash, arch): value}`` of a device's measurements matching the filters: latencies at the device's
        nominal level where a reference was measured beside them (relative value x nominal level of their key; at
        ``level_ms`` instead where given: another store's nominal level of the same reference), else as measured;
        ``raw``: every value as measured.

        Raises:
            StoreError: unknown device, or the filters leave several rows for one arch (say which runtime/batch).
        """
        if self._execute("SELECT 1 FROM devices WHERE name = ?", (device,)).fetchone() is None:
            known = ", ".join(d["name"] for d in self.devices()) or "none"
            raise StoreError(f"no device {device!r} in {self.path}; devices: {known}")
        sql = (
            "SELECT a.space_hash, a.arch, m.value, m.relative, s.reference, m.runtime, m.batch, m.resolution, "
            "m.threads FROM measurements m JOIN archs a ON a.id = m.arch_id "
            "LEFT JOIN sessions s ON s.id = m.session_id JOIN devices d ON d.id = m.device_id "
            "WHERE d.name = ? AND m.metric = ?"
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
        nominal: dict[tuple[MeasurementKey, str], float | None] = {}
        for h, arch, value, relative, reference, *key_fields in self._execute(sql, params).fetchall():
            if relative is not None and reference is not None and not raw:
                key = (MeasurementKey(key_fields[0], metric, *key_fields[1:]), reference)
                if key not in nominal:
                    nominal[key] = level_ms if level_ms is not None else self.nominal_level(device, *key)
                level = nominal[key]
                value = value if level is None else relative * level
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
            "m.value, m.iqr, m.mean, m.min, m.n, m.flagged, m.created_at, m.session_id, m.relative, s.level_ms "
            "FROM measurements m LEFT JOIN sessions s ON s.id = m.session_id "
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
            "session",
            "relative",
            "level_ms",
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

"""``edgenas store`` (inspect, import into and export the measurement store) and ``edgenas monotonic`` (how
alike devices of the store rank the same archs)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from edgenas.cli._app import (
    app,
    emit_json,
    out,
    sub_app,
)
from edgenas.cli._options import (
    MAX_THREADS,
    JsonOpt,
    MetricOpt,
    NewStoreOpt,
    StoreOpt,
    choice,
    number,
    output_file,
)
from edgenas.errors import MeasurementError, StoreError
from edgenas.hardware.store_import import PRESETS
from edgenas.spaces import get_space

store_app = sub_app("store", "Inspect, import into and export the measurement store.")


@store_app.command("info")
def store_info(store: StoreOpt, as_json: JsonOpt = False) -> None:
    """Devices in the store with their measurement counts."""
    from edgenas.hardware import MeasurementStore

    with MeasurementStore(store, create=False) as db:
        devices, total = db.devices(), db.count()
        levels = [level_summary(d["name"], db.levels(d["name"]), db.unanchored(d["name"])) for d in devices]
    if as_json:
        emit_json({"store": str(store), "measurements": total, "devices": devices, "levels": levels})
        return
    table = Table("device", "kind", "latency rows", "energy rows", "source")
    for d in devices:
        table.add_row(
            d["name"],
            d["kind"],
            str(d["counts"].get("latency_ms", 0)),
            str(d["counts"].get("energy_mJ", 0)),
            d["source"] or "",
        )
    out.print(table)
    out.print(f"{total} measurements in {store}")
    _print_levels([row for summary in levels for row in summary])


#: Characters of the level-over-time sparkline, low to high.
SPARK = "▁▂▃▄▅▆▇█"
#: Points of the sparkline (sessions are averaged into this many bins).
SPARK_POINTS = 24


def sparkline(values: list[float]) -> str:
    """``values`` in order, averaged into at most :data:`SPARK_POINTS` bins, as block characters (min..max)."""
    bins = [float(np.mean(chunk)) for chunk in np.array_split(np.asarray(values), min(SPARK_POINTS, len(values)))]
    low, high = min(bins), max(bins)
    scale = (len(SPARK) - 1) / (high - low) if high > low else 0.0
    return "".join(SPARK[round((v - low) * scale)] for v in bins)


def level_summary(device: str, sessions: list[dict], unanchored: int) -> list[dict]:
    """Per key and reference of ``device``: sessions, nominal level (median), range, first and last time, and the
    level over time (a sparkline); rows without a level are counted on the first."""
    groups: dict[tuple, list[dict]] = {}
    for row in sessions:
        key = (row["runtime"], row["batch"], row["resolution"], row["threads"], row["reference"])
        groups.setdefault(key, []).append(row)
    out = []
    for (runtime, batch, resolution, threads, reference), rows in groups.items():
        values = [r["level_ms"] for r in rows]
        out.append(
            {
                "device": device,
                "runtime": runtime,
                "batch": batch,
                "resolution": resolution,
                "threads": threads,
                "reference": reference,
                "sessions": len(values),
                "nominal_ms": float(np.median(values)),
                "min_ms": min(values),
                "max_ms": max(values),
                "first": rows[0]["created_at"],
                "last": rows[-1]["created_at"],
                "over_time": sparkline(values),
            }
        )
    if out:
        out[0]["unanchored"] = unanchored
    return out


def _print_levels(rows: list[dict]) -> None:
    if not rows:
        out.print("no levels: nothing was measured beside a reference (a store written before schema 2)")
        return
    table = Table("device", "key", "sessions", "nominal ms", "range ms", "level over time", "from .. to")
    for r in rows:
        table.add_row(
            r["device"],
            f"{r['runtime']} b{r['batch']} @{r['resolution']}px t{r['threads']}",
            str(r["sessions"]),
            f"{r['nominal_ms']:.3f}",
            f"{r['min_ms']:.3f}..{r['max_ms']:.3f}",
            r["over_time"],
            f"{r['first'][:16]} .. {r['last'][:16]}",
        )
    out.print(table)
    out.print("level: the reference network's latency in each measurement session (edgenas measure --reference)")


@store_app.command("import")
def store_import(
    table: Annotated[
        Path,
        typer.Argument(help="CSV table to import, or the results.json of runner.py.", exists=True, dir_okay=False),
    ],
    store: NewStoreOpt,
    preset: Annotated[
        str | None, choice("--preset", values=tuple(PRESETS), help="Known table (auto-detected).")
    ] = None,
    space: Annotated[str | None, typer.Option("--space", "-s", help="Space of the table's arch strings.")] = None,
    arch_column: Annotated[str | None, typer.Option("--arch-column", help="Column with arch strings.")] = None,
    value_column: Annotated[
        list[str] | None, typer.Option("--value-column", help="Column with values (repeatable).")
    ] = None,
    store_device: Annotated[
        str | None,
        typer.Option(
            "--store-device",
            help="Device name in the store (several --value-column: a prefix); in a table with a 'device' column "
            "(a store export), the device whose rows to import.",
        ),
    ] = None,
    metric: MetricOpt = "latency_ms",
    as_json: JsonOpt = False,
) -> None:
    """Import an external table (HW-NAS-Bench, HELP, a store export, or any CSV with --space/--arch-column/
    --value-column) as devices; the whole file is checked before the store is opened."""
    from edgenas.hardware import MeasurementStore
    from edgenas.hardware.store_import import read_table, write_table

    if table.suffix == ".json":
        _import_runner_results(table, store, store_device, as_json)
        return
    resolved, arch_col, columns, source = _import_plan(
        table, preset, space, arch_column, value_column, store_device, metric
    )
    parsed = read_table(table, resolved, arch_col, columns, device=store_device if value_column else None)
    with MeasurementStore(store) as db:
        report = write_table(db, parsed, source=source)
    payload = {
        "store": str(store),
        "table": str(table),
        "rows": report.rows,
        "added": report.added,
        "skipped": report.skipped,
        "store_devices": report.devices,
    }
    if as_json:
        emit_json(payload)
        return
    skipped = ", ".join(f"{v} {k}" for k, v in report.skipped.items() if v) or "none"
    out.print(
        f"imported {report.added} values from {report.rows} rows of {table} as {', '.join(report.devices)} "
        f"(skipped: {skipped})"
    )


def _import_runner_results(path: Path, store: Path, device: str | None, as_json: bool) -> None:
    """``store import DIR/results.json``: what runner.py measured on a device, filed under that device."""
    from edgenas.hardware import MeasurementStore
    from edgenas.hardware.remote import import_results, read_results

    results = read_results(path)
    with MeasurementStore(store) as db:
        name, added = import_results(db, results, device)
    payload = {
        "store": str(store),
        "table": str(path),
        "rows": len(results.rows),
        "added": added,
        "store_devices": [name],
    }
    if as_json:
        emit_json(payload)
        return
    out.print(f"imported {added} of {len(results.rows)} runner measurements from {path} as {name}")


def _import_plan(
    table: Path,
    preset: str | None,
    space: str | None,
    arch_column: str | None,
    value_column: list[str] | None,
    store_device: str | None,
    metric: str,
) -> tuple[Any, str, list[Any], str]:
    """(space, arch column, value columns, source) of an import: from --value-column, a preset, or the header."""
    from edgenas.hardware import ImportColumn
    from edgenas.hardware.store_import import detect_preset, read_csv

    if value_column:
        if space is None or arch_column is None:
            raise StoreError("--value-column needs --space and --arch-column")
        prefix = store_device or table.stem
        columns = [ImportColumn(c, f"{prefix}-{c}" if len(value_column) > 1 else prefix, metric) for c in value_column]
        return get_space(space), arch_column, columns, f"CSV {table.name}"
    if space is not None or arch_column is not None:
        raise StoreError("--space and --arch-column go with --value-column (a preset names its own)")
    if preset is None:
        header, _ = read_csv(table)
        preset = detect_preset(header)
        if preset is None:
            raise StoreError(
                f"{table}: not a known table ({', '.join(PRESETS)}); give --space, --arch-column and --value-column"
            )
    p = PRESETS[preset]
    return get_space(p["space"]), p["arch_column"], p["columns"], p["source"]


@store_app.command("export")
def store_export(
    store: StoreOpt,
    output: Annotated[Path, output_file("--output", "-o", help="CSV file to write.")],
    as_json: JsonOpt = False,
) -> None:
    """Write every measurement (device, space, arch, runtime, metric, batch, ..., value) to a CSV file."""
    from edgenas.hardware import MeasurementStore

    with MeasurementStore(store, create=False) as db:
        n = db.export_csv(output)
    if as_json:
        emit_json({"store": str(store), "output": str(output), "rows": n})
        return
    out.print(f"wrote {n} measurements to {output}")


@app.command("monotonic")
def monotonic_command(
    store: StoreOpt,
    devices: Annotated[
        list[str] | None, typer.Option("--store-device", help="A device to compare (repeatable; default: all).")
    ] = None,
    metric: MetricOpt = "latency_ms",
    threshold: Annotated[
        float, number("--threshold", help="Kendall tau needed to share a group.", low=-1, high=1)
    ] = 0.8,
    runtime: Annotated[str | None, typer.Option("--runtime", "-r", help="Only rows of this runtime.")] = None,
    input_batch: Annotated[
        int | None, number("--input-batch", help="Only rows of this input batch.", low=1, high=65_536)
    ] = None,
    threads: Annotated[
        int | None, number("--threads", help="Only rows of this thread count.", high=MAX_THREADS)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Performance monotonicity (thesis Def 3.1): gamma, R^2, Kendall tau, Spearman per device pair, and groups."""
    from edgenas.hardware import MeasurementStore, compare_devices, group_devices

    with MeasurementStore(store, create=False) as db:
        listed = db.devices()
        kinds = {d["name"]: d["kind"] for d in listed}
        names = list(devices or [d["name"] for d in listed if d["counts"].get(metric)])
        if len(names) < 2:
            raise MeasurementError(f"need at least two devices with {metric} values; found {len(names)}")
        filters = {"runtime": runtime, "batch": input_batch, "threads": threads}
        # imported devices have runtime "imported": filters apply to measured devices only
        values = {
            name: db.values(name, metric=metric, **(filters if kinds.get(name) == "measured" else {})) for name in names
        }
    pairs, taus = [], {}
    for a, b in itertools.combinations(names, 2):
        try:
            m = compare_devices(values[a], values[b])
        except MeasurementError:
            continue  # different spaces: nothing in common
        taus[(a, b)] = m.kendall_tau
        pairs.append({"a": a, "b": b, **m.as_dict()})
    if not pairs:
        given = {"--runtime": runtime, "--input-batch": input_batch, "--threads": threads}
        filters = ", ".join(f"{k} {v}" for k, v in given.items() if v is not None)
        raise MeasurementError(
            "no two of these devices share architectures "
            + (f"with {filters} (measured devices are filtered)" if filters else "(different spaces?)")
        )
    groups = group_devices(names, taus, threshold)
    if as_json:
        emit_json({"metric": metric, "pairs": pairs, "threshold": threshold, "groups": groups})
        return
    table = Table("device A", "device B", "common archs", "gamma (A/B)", "R^2", "Kendall tau", "Spearman")
    for p in pairs:
        table.add_row(
            p["a"],
            p["b"],
            str(p["n"]),
            f"{p['gamma']:.3f}",
            f"{p['r2']:.3f}",
            f"{p['kendall_tau']:.3f}",
            f"{p['spearman']:.3f}",
        )
    out.print(table)
    for i, g in enumerate(groups, start=1):
        out.print(f"group {i} (tau >= {threshold}): {', '.join(g)}")

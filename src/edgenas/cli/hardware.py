"""``edgenas profile``, ``measure``, ``store``, ``comfort`` and ``monotonic``: latency on real runtimes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgenas.cli._app import (
    ArchArg,
    JsonOpt,
    SetOpt,
    SpaceOpt,
    app,
    emit_json,
    err,
    out,
    parse_options,
    resolve_archs,
    resolve_one_arch,
)
from edgenas.errors import MeasurementError, StoreError
from edgenas.spaces import get_space, space_of

store_app = typer.Typer(help="Inspect, import into and export the measurement store.", no_args_is_help=True)
app.add_typer(store_app, name="store")

RuntimeOpt = Annotated[str, typer.Option("--runtime", "-r", help="ort-cpu, ort-cuda, torch-cpu or torch-cuda.")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Batch size.")]
ResolutionOpt = Annotated[
    int | None, typer.Option("--resolution", min=1, help="Input side (px); default: the space's.")
]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="CPU intra-op threads (0: library default).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", min=3, help="Timed runs per attempt.")]
StoreArg = Annotated[Path, typer.Argument(help="Measurement store (SQLite file).")]


def _protocol(warmup: int, repeats: int, max_rel_iqr: float = 0.1, retries: int = 2) -> Any:
    from edgenas.hardware import Protocol

    return Protocol(warmup=warmup, repeats=repeats, max_rel_iqr=max_rel_iqr, max_retries=retries)


def _runtime(name: str, batch: int, resolution: int, threads: int) -> Any:
    from edgenas.hardware import RuntimeOptions, get_runtime

    return get_runtime(name, RuntimeOptions(batch=batch, resolution=resolution, threads=threads))


@app.command("profile")
def profile_command(
    space: Annotated[str, typer.Argument(help="Registered space name.")],
    store: Annotated[Path, typer.Option("--store", help="Measurement store (SQLite; created when absent).")],
    runtime: RuntimeOpt = "ort-cpu",
    n: Annotated[int, typer.Option("--n", min=1, help="Architectures to sample.")] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    set_: SetOpt = None,
    batch: BatchOpt = 1,
    resolution: ResolutionOpt = None,
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = 10,
    repeats: RepeatsOpt = 50,
    max_rel_iqr: Annotated[float, typer.Option("--max-rel-iqr", help="Re-measure above this IQR/median.")] = 0.1,
    interleave: Annotated[int, typer.Option("--interleave", min=1, help="Measure K archs round-robin.")] = 1,
    energy: Annotated[bool, typer.Option("--energy", help="Also measure energy (NVML/RAPL).")] = False,
    device_name: Annotated[str | None, typer.Option("--device-name", help="Name in the store.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure N sampled architectures of SPACE into the store; archs already stored are skipped (resumable)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from edgenas.hardware import MeasurementStore, profile

    resolved = get_space(space, **parse_options(set_))
    rt = _runtime(runtime, batch, resolution or resolved.resolution, threads)
    specs = resolved.sample(seed=seed, n=n)
    progress = Progress(
        TextColumn("[bold]profiling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=err,
        transient=True,
        disable=as_json,
    )
    with MeasurementStore(store) as db, progress:
        task = progress.add_task("profile", total=len(set(specs)), last="")

        def on_progress(done: int, total: int, spec: Any, stats: Any) -> None:
            progress.update(task, completed=done, last=f"last {stats.median_ms:.3f} ms")

        report = profile(
            specs,
            rt,
            db,
            protocol=_protocol(warmup, repeats, max_rel_iqr),
            device_name=device_name,
            interleave=interleave,
            energy=energy,
            on_progress=on_progress,
        )
    payload = {
        "store": str(store),
        "device": report.device,
        "runtime": runtime,
        "requested": report.requested,
        "skipped": report.skipped,
        "measured": report.measured,
        "flagged": report.flagged,
        "seconds": round(report.seconds, 2),
        "energy": report.energy_note,
    }
    if as_json:
        emit_json(payload)
        return
    rate = report.measured / report.seconds * 60 if report.seconds > 0 else 0.0
    out.print(
        f"{report.measured} measured, {report.skipped} already stored, {report.flagged} flagged (noisy) on "
        f"{report.device} with {runtime}: {report.seconds:.1f} s ({rate:.1f} archs/min) -> {store}"
    )
    if energy:
        out.print(f"energy: {report.energy_note}")


@app.command("measure")
def measure_command(
    arch: ArchArg,
    runtime: RuntimeOpt = "ort-cpu",
    space: SpaceOpt = None,
    set_: SetOpt = None,
    batch: BatchOpt = 1,
    resolution: ResolutionOpt = None,
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = 10,
    repeats: RepeatsOpt = 50,
    energy: Annotated[bool, typer.Option("--energy/--no-energy", help="Measure energy when a counter exists.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Measure the latency (median, IQR) and, where a counter exists, the energy of architectures."""
    from edgenas.hardware import measure_arch

    rows = []
    for spec in resolve_archs(arch, space, parse_options(set_)):
        rt = _runtime(runtime, batch, resolution or space_of(spec).resolution, threads)
        m = measure_arch(spec, rt, _protocol(warmup, repeats), energy=energy)
        rows.append(
            {
                "space": spec.space,
                "arch": str(spec),
                "runtime": runtime,
                "batch": batch,
                "resolution": rt.options.resolution,
                "threads": threads,
                **m.latency.as_dict(),
                "energy_mJ": m.energy_mj,
                "energy_note": m.energy_note,
            }
        )
    if as_json:
        emit_json({"measurements": rows})
        return
    for i, r in enumerate(rows):
        flag = " [yellow](noisy: flagged)[/yellow]" if r["flagged"] else ""
        energy_text = f"{r['energy_mJ']:.3f} mJ" if r["energy_mJ"] is not None else f"energy n/a ({r['energy_note']})"
        out.print(
            f"#{i} {r['arch']}\n   {r['runtime']} batch {r['batch']} @{r['resolution']}px: median "
            f"{r['median_ms']:.3f} ms, IQR {r['iqr_ms']:.3f} ms ({r['rel_iqr']:.1%}), n={r['n']}{flag}; "
            f"{energy_text}"
        )


@store_app.command("info")
def store_info(store: StoreArg, as_json: JsonOpt = False) -> None:
    """Devices in the store with their measurement counts."""
    from edgenas.hardware import MeasurementStore

    with MeasurementStore(store, create=False) as db:
        devices, total = db.devices(), db.count()
    if as_json:
        emit_json({"store": str(store), "measurements": total, "devices": devices})
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


@store_app.command("import")
def store_import(
    store: StoreArg,
    table: Annotated[Path, typer.Argument(help="CSV table to import.")],
    preset: Annotated[
        str | None, typer.Option("--preset", help="hwnasbench-nb201 or help-fbnet (auto-detected).")
    ] = None,
    space: SpaceOpt = None,
    arch_column: Annotated[str | None, typer.Option("--arch-column", help="Column with arch strings.")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", help="Value column (repeatable).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Device name prefix for --target columns.")] = None,
    metric: Annotated[
        str, typer.Option("--metric", help="latency_ms or energy_mJ for --target columns.")
    ] = "latency_ms",
    as_json: JsonOpt = False,
) -> None:
    """Import an external table (HW-NAS-Bench, HELP, or any CSV with --space/--arch-column/--target) as devices."""
    import csv

    from edgenas.hardware import PRESETS, ImportColumn, MeasurementStore, import_table
    from edgenas.hardware.store import METRICS, detect_preset

    if target:
        if space is None or arch_column is None:
            raise StoreError("--target needs --space and --arch-column")
        if metric not in METRICS:
            raise StoreError(f"--metric must be one of {', '.join(METRICS)}")
        prefix = device or table.stem
        columns = [ImportColumn(t, f"{prefix}-{t}" if len(target) > 1 else prefix, metric) for t in target]
        resolved, arch_col, source = get_space(space), arch_column, f"CSV {table.name}"
    else:
        if preset is None:
            try:
                with table.open(newline="") as f:
                    header = next(csv.reader(f), [])
            except OSError as exc:
                raise StoreError(f"cannot read {table}: {exc.strerror or exc}") from exc
            preset = detect_preset(header)
            if preset is None:
                raise StoreError(
                    f"{table}: not a known table ({', '.join(PRESETS)}); give --space, --arch-column and --target"
                )
        if preset not in PRESETS:
            raise StoreError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        p = PRESETS[preset]
        resolved, arch_col, columns, source = get_space(p["space"]), p["arch_column"], p["columns"], p["source"]
    with MeasurementStore(store) as db:
        report = import_table(db, table, resolved, arch_col, columns, source=source)
    payload = {
        "store": str(store),
        "table": str(table),
        "rows": report.rows,
        "added": report.added,
        "skipped": report.skipped,
        "devices": report.devices,
    }
    if as_json:
        emit_json(payload)
        return
    skipped = ", ".join(f"{v} {k}" for k, v in report.skipped.items() if v) or "none"
    out.print(
        f"imported {report.added} values from {report.rows} rows of {table} as {', '.join(report.devices)} "
        f"(skipped: {skipped})"
    )


@store_app.command("export")
def store_export(
    store: StoreArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
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


@app.command("comfort")
def comfort_command(
    arch: ArchArg,
    runtime: RuntimeOpt = "ort-cpu",
    space: SpaceOpt = None,
    set_: SetOpt = None,
    scales: Annotated[str, typer.Option("--scales", help="start:stop:step or a list; must include 1.")] = "1:3:0.25",
    batch: BatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = 10,
    repeats: RepeatsOpt = 30,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Smallest relative latency band counted as noise.")
    ] = 0.03,
    plot: Annotated[Path | None, typer.Option("--plot", "-o", help="Write a PNG plot here.")] = None,
    index: Annotated[int, typer.Option("--index", min=0, help="Which spec of a multi-spec file (0-based).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Comfort Zone: latency and arithmetic intensity per width scale; the largest scale as fast as the base."""
    from edgenas.hardware import comfort_zone, parse_scales, plot_comfort

    spec = resolve_one_arch(arch, space, set_, index)
    rt = _runtime(runtime, batch, space_of(spec).resolution, threads)
    report = comfort_zone(spec, rt, parse_scales(scales), protocol=_protocol(warmup, repeats), tolerance=tolerance)
    if plot is not None:
        plot_comfort(report, plot)
    payload = {
        "arch": report.arch,
        "runtime": runtime,
        "batch": batch,
        "band": report.band,
        "zone_scale": report.zone_scale,
        "has_zone": report.has_zone,
        "rows": report.rows,
        "plot": str(plot) if plot else None,
    }
    if as_json:
        emit_json(payload)
        return
    table = Table("scale", "latency (ms)", "IQR (ms)", "vs base", "mult-adds (M)", "intensity", "in band")
    for r in report.rows:
        table.add_row(
            f"{r['scale']:.2f}",
            f"{r['median_ms']:.3f}",
            f"{r['iqr_ms']:.3f}",
            f"{r['latency_ratio']:.2f}x",
            f"{r['mult_adds_M']:.1f}",
            f"{r['intensity']:.1f}",
            "yes" if r["within_band"] else "no",
        )
    out.print(table)
    verdict = (
        f"Comfort Zone up to x{report.zone_scale:.2f}"
        if report.has_zone
        else "no Comfort Zone: latency grows with width right away"
    )
    out.print(
        f"{runtime}, batch {batch}: {verdict} (noise band +{report.band:.1%})" + (f"; plot {plot}" if plot else "")
    )


@app.command("monotonic")
def monotonic_command(
    devices: Annotated[list[str] | None, typer.Argument(help="Devices to compare (two: one pair; none: all).")] = None,
    store: Annotated[Path, typer.Option("--store", help="Measurement store.")] = Path("measurements.sqlite"),
    metric: Annotated[str, typer.Option("--metric", help="latency_ms or energy_mJ.")] = "latency_ms",
    threshold: Annotated[float, typer.Option("--threshold", help="Kendall tau needed to share a group.")] = 0.8,
    runtime: Annotated[str | None, typer.Option("--runtime", help="Only rows of this runtime.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Only rows of this batch size.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Only rows of this thread count.")] = None,
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
        filters = {"runtime": runtime, "batch": batch, "threads": threads}
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
        raise MeasurementError("no two of these devices share architectures (different spaces?)")
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

"""``edgenas profile``, ``measure``, ``store``, ``comfort`` and ``monotonic``: latency on real runtimes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgenas.cli._app import (
    app,
    emit_json,
    out,
    parse_options,
    resolve_archs,
    resolve_one_arch,
    sub_app,
)
from edgenas.cli._options import (
    MAX_COUNT,
    MAX_MS,
    MAX_SAMPLES,
    MAX_THREADS,
    ArchArg,
    ArchSamplingOpt,
    EnergyOpt,
    IndexOpt,
    InputBatchOpt,
    JsonOpt,
    MetricOpt,
    NewStoreOpt,
    NoiseBandOpt,
    PlotOpt,
    RepeatsOpt,
    ResolutionOpt,
    RuntimeOpt,
    SeedOpt,
    SetOpt,
    SpaceArg,
    SpaceOpt,
    StoreOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    choice,
    number,
    output_file,
    run_dir,
)
from edgenas.cli._progress import progress_bar
from edgenas.errors import MeasurementError, StoreError
from edgenas.hardware.store import PRESETS
from edgenas.spaces import get_space, space_of

store_app = sub_app("store", "Inspect, import into and export the measurement store.")

IndexAllOpt = Annotated[
    int | None, number("--index", help="Only this spec of a multi-spec file (0-based; default: all).", high=MAX_COUNT)
]
MaxRelIqrOpt = Annotated[
    float, number("--max-rel-iqr", help="Measure again above this IQR/median.", high=10, low_open=True)
]


def _protocol(warmup: int, repeats: int, max_rel_iqr: float = 0.1, retries: int = 2) -> Any:
    from edgenas.hardware import Protocol

    return Protocol(warmup=warmup, repeats=repeats, max_rel_iqr=max_rel_iqr, max_retries=retries)


def _runtime(name: str, batch: int, resolution: int, threads: int) -> Any:
    from edgenas.hardware import RuntimeOptions, get_runtime

    return get_runtime(name, RuntimeOptions(batch=batch, resolution=resolution, threads=threads))


@app.command("profile")
def profile_command(
    space: SpaceArg,
    store: Annotated[
        Path | None, output_file("--store", help="Measurement store (SQLite file; created when absent).")
    ] = None,
    runtime: RuntimeOpt = "ort-cpu",
    n: Annotated[int, number("--n", help="Architectures to sample.", low=1, high=MAX_SAMPLES)] = 100,
    seed: SeedOpt = 0,
    set_: SetOpt = None,
    input_batch: InputBatchOpt = 1,
    resolution: ResolutionOpt = None,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 50,
    max_rel_iqr: MaxRelIqrOpt = 0.1,
    interleave: Annotated[int, number("--interleave", help="Measure K archs round-robin.", low=1, high=10_000)] = 1,
    energy: EnergyOpt = False,
    store_device: Annotated[
        str | None, typer.Option("--store-device", help="Name of this device in the store (default: its fingerprint).")
    ] = None,
    cover: Annotated[
        bool,
        typer.Option(
            "--cover",
            help="Cover the whole feasible latency range: half the archs uniform, half planned evenly over the range "
            "of a LUT fitted on them (uniform archs pile up in the middle).",
        ),
    ] = False,
    near: Annotated[
        list[float] | None,
        number(
            "--near",
            help="Add archs predicted near this latency (ms; repeatable) until the store holds N per value.",
            high=MAX_MS,
            low_open=True,
        ),
    ] = None,
    band: Annotated[
        float, number("--band", help="Relative band of --near (0.03: within 3%).", high=1, low_open=True)
    ] = 0.03,
    predictor: Annotated[
        Path | None,
        typer.Option(
            "--predictor", exists=True, dir_okay=False, help="Predictor of --near (default: a LUT on the store)."
        ),
    ] = None,
    sampling: ArchSamplingOpt = "uniform",
    export: Annotated[
        Path | None,
        run_dir(
            "--export",
            help="Measure elsewhere: write the archs as ONNX models, a manifest and runner.py into this folder instead "
            "(run 'python runner.py DIR' on the device, then 'edgenas store import DIR/results.json').",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure N architectures of SPACE into the store (uniform samples, or --sampling ordered; --cover: spread over
    the latency range; --near T: predicted near T); archs already stored are skipped (resumable). With --export DIR,
    write them for a device that cannot run edgenas instead."""
    from edgenas.hardware import MeasurementStore

    resolved = get_space(space, **parse_options(set_))
    if export is not None:
        _export_for_device(
            resolved,
            n,
            seed,
            sampling,
            export,
            input_batch,
            resolution,
            threads,
            warmup,
            repeats,
            max_rel_iqr,
            cover or bool(near),
            as_json,
        )
        return
    if store is None:
        raise MeasurementError("give --store S.sqlite (where the measurements go), or --export DIR")
    rt = _runtime(runtime, input_batch, resolution or resolved.resolution, threads)
    if sampling != "uniform" and (cover or near):
        raise MeasurementError("--sampling ordered draws the archs of a plain profile; --cover and --near plan theirs")
    plan = _profile_plan(resolved, n, seed, cover, near, band, predictor, ordered=sampling == "ordered")
    progress = progress_bar("[bold]profiling", "{task.fields[last]}", quiet=as_json)
    with MeasurementStore(store) as db, progress:
        task = progress.add_task("profile", total=None, last="")

        def on_progress(done: int, total: int, spec: Any, stats: Any) -> None:
            progress.update(task, completed=done, total=total, last=f"last {stats.median_ms:.3f} ms")

        options = {
            "protocol": _protocol(warmup, repeats, max_rel_iqr),
            "device_name": store_device,
            "interleave": interleave,
            "energy": energy,
            "on_progress": on_progress,
        }
        report = plan(resolved, rt, db, **options)
    _print_profile(report, store, runtime, energy, as_json)


def _export_for_device(
    space: Any,
    n: int,
    seed: int,
    sampling: str,
    folder: Path,
    batch: int,
    resolution: int | None,
    threads: int,
    warmup: int,
    repeats: int,
    max_rel_iqr: float,
    planned: bool,
    as_json: bool,
) -> None:
    """``profile --export``: the sampled archs as ONNX models with a manifest, and the runner beside them."""
    import shutil

    from edgenas.hardware import RuntimeOptions
    from edgenas.hardware.remote import export_archs, runner_path

    if planned:
        raise MeasurementError("--cover and --near plan on measurements made here; --export takes plain samples")
    specs = space.sample(seed=seed, n=n, ordered=sampling == "ordered")
    options = RuntimeOptions(batch=batch, resolution=resolution or space.resolution, threads=threads)
    manifest = export_archs(specs, folder, options, _protocol(warmup, repeats, max_rel_iqr))
    shutil.copyfile(runner_path(), folder / "runner.py")
    payload = {"export": str(folder), "manifest": str(manifest), "models": len(set(specs)), "runner": "runner.py"}
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"wrote {payload['models']} ONNX models, {manifest.name} and runner.py to {folder}; on the device (only "
        f"onnxruntime and numpy needed): python {folder.name}/runner.py {folder.name}; then: edgenas store import "
        f"{folder}/results.json --store S.sqlite"
    )


def _profile_plan(
    space: Any,
    n: int,
    seed: int,
    cover: bool,
    near: list[float] | None,
    band: float,
    predictor: Any,
    *,
    ordered: bool = False,
):
    """The profiling function of the chosen mode, called as ``plan(space, runtime, store, **profile_options)``."""
    from edgenas.hardware import profile
    from edgenas.search.coverage import profile_covering, profile_near

    if cover and near:
        raise MeasurementError("use either --cover (the whole range) or --near T (around targets), not both")
    if predictor is not None and not near:
        raise MeasurementError("--predictor goes with --near T (it plans the archs near T)")
    if near:
        from edgenas.predictors import Predictor

        planner = Predictor.load(predictor) if predictor is not None else None
        return lambda s, rt, db, **o: profile_near(s, rt, db, near, n, predictor=planner, band=band, seed=seed, **o)
    if cover:
        return lambda s, rt, db, **o: profile_covering(s, rt, db, n, seed=seed, **o)
    return lambda s, rt, db, **o: profile(s.sample(seed=seed, n=n, ordered=ordered), rt, db, **o)


def _print_profile(report: Any, store: Path, runtime: str, energy: bool, as_json: bool) -> None:
    """The profile's outcome: counts, time and rate, and the phases of a planned profile."""
    phases = getattr(report, "phases", None)
    payload = {
        "store": str(store),
        "store_device": report.device,
        "runtime": runtime,
        "requested": sum(p["requested"] for p in phases) if phases is not None else report.requested,
        "skipped": report.skipped,
        "measured": report.measured,
        "flagged": report.flagged,
        "seconds": round(report.seconds, 2),
        "energy": getattr(report, "energy_note", None),
    }
    if phases is not None:
        payload["phases"] = phases
    if as_json:
        emit_json(payload)
        return
    for p in phases or []:
        reach = f"; planned over {p['feasible'][0]:.3f}..{p['feasible'][1]:.3f} ms" if "feasible" in p else ""
        near = f"; {p['already_near']} already stored near it" if "already_near" in p else ""
        out.print(f"{p['name']}: {p['measured']} measured, {p['skipped']} already stored{near}{reach}")
    rate = report.measured / report.seconds * 60 if report.seconds > 0 else 0.0
    out.print(
        f"{report.measured} measured, {report.skipped} already stored, {report.flagged} flagged (noisy) on "
        f"{report.device} with {runtime}: {report.seconds:.1f} s ({rate:.1f} archs/min) -> {store}"
    )
    if energy and payload["energy"]:
        out.print(f"energy: {payload['energy']}")


@app.command("measure")
def measure_command(
    arch: ArchArg,
    runtime: RuntimeOpt = "ort-cpu",
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: IndexAllOpt = None,
    input_batch: InputBatchOpt = 1,
    resolution: ResolutionOpt = None,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 50,
    energy: EnergyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure the latency (median, IQR) and, with --energy where a counter exists, the energy of architectures."""
    from edgenas.hardware import measure_arch

    specs = (
        resolve_archs(arch, space, parse_options(set_))
        if index is None
        else [resolve_one_arch(arch, space, set_, index)]
    )
    rows = []
    for spec in specs:
        rt = _runtime(runtime, input_batch, resolution or space_of(spec).resolution, threads)
        m = measure_arch(spec, rt, _protocol(warmup, repeats), energy=energy)
        rows.append(
            {
                "space": spec.space,
                "arch": str(spec),
                "runtime": runtime,
                "input_batch": input_batch,
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
            f"#{i} {r['arch']}\n   {r['runtime']} batch {r['input_batch']} @{r['resolution']}px: median "
            f"{r['median_ms']:.3f} ms, IQR {r['iqr_ms']:.3f} ms ({r['rel_iqr']:.1%}), n={r['n']}{flag}; "
            f"{energy_text}"
        )


@store_app.command("info")
def store_info(store: StoreOpt, as_json: JsonOpt = False) -> None:
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
    from edgenas.hardware.store import read_table, write_table

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
    from edgenas.hardware.store import detect_preset, read_csv

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


@app.command("comfort")
def comfort_command(
    arch: ArchArg,
    runtime: RuntimeOpt = "ort-cpu",
    space: SpaceOpt = None,
    set_: SetOpt = None,
    scales: Annotated[str, typer.Option("--scales", help="start:stop:step or a list; must include 1.")] = "1:3:0.25",
    input_batch: InputBatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 30,
    noise_band: NoiseBandOpt = 0.03,
    plot: PlotOpt = None,
    index: IndexOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Comfort Zone: latency and arithmetic intensity per width scale; the largest scale as fast as the base."""
    from edgenas.hardware import comfort_zone, parse_scales, plot_comfort

    spec = resolve_one_arch(arch, space, set_, index)
    grid = parse_scales(scales)
    rt = _runtime(runtime, input_batch, space_of(spec).resolution, threads)
    report = comfort_zone(spec, rt, grid, protocol=_protocol(warmup, repeats), tolerance=noise_band)
    if plot is not None:
        plot_comfort(report, plot)
    payload = {
        "arch": report.arch,
        "runtime": runtime,
        "input_batch": input_batch,
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
        f"{runtime}, batch {input_batch}: {verdict} (noise band +{report.band:.1%})"
        + (f"; plot {plot}" if plot else "")
    )


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

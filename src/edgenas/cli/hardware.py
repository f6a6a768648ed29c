"""``edgenas profile`` and ``measure``: latency (and energy) on real runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import (
    app,
    emit_json,
    out,
    parse_options,
)
from edgenas.cli._device import device_runtime, opened_device
from edgenas.cli._options import (
    MAX_COUNT,
    MAX_MS,
    MAX_SAMPLES,
    ArchSamplingOpt,
    EnergyOpt,
    InputBatchOpt,
    JsonOpt,
    RemoteOpt,
    RepeatsOpt,
    ResolutionOpt,
    RuntimeOpt,
    SeedOpt,
    SetOpt,
    SpaceArg,
    ThreadsOpt,
    WarmupRunsOpt,
    number,
    output_file,
    run_dir,
)
from edgenas.cli._progress import progress_bar
from edgenas.errors import MeasurementError
from edgenas.spaces import get_space

IndexAllOpt = Annotated[
    int | None, number("--index", help="Only this spec of a multi-spec file (0-based; default: all).", high=MAX_COUNT)
]
MaxRelIqrOpt = Annotated[
    float, number("--max-rel-iqr", help="Measure again above this IQR/median.", high=10, low_open=True)
]


def timing_protocol(warmup: int, repeats: int, max_rel_iqr: float = 0.1, retries: int = 2) -> Any:
    from edgenas.hardware import Protocol

    return Protocol(warmup=warmup, repeats=repeats, max_rel_iqr=max_rel_iqr, max_retries=retries)


@app.command("profile")
def profile_command(
    space: SpaceArg,
    store: Annotated[
        Path | None, output_file("--store", help="Measurement store (SQLite file; created when absent).")
    ] = None,
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
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
        from edgenas.hardware import RuntimeOptions

        if cover or near:
            raise MeasurementError("--cover and --near plan on measurements made here; --export takes plain samples")
        specs = resolved.sample(seed=seed, n=n, ordered=sampling == "ordered")
        options = RuntimeOptions(batch=input_batch, resolution=resolution or resolved.resolution, threads=threads)
        _export_for_device(specs, export, options, timing_protocol(warmup, repeats, max_rel_iqr), as_json)
        return
    if store is None:
        raise MeasurementError("give --store S.sqlite (where the measurements go), or --export DIR")
    runtime = device_runtime(runtime, remote) or runtime
    if remote is not None and near and store_device is None:
        raise MeasurementError("--near with --remote needs --store-device NAME (the remote device's name in the store)")
    if sampling != "uniform" and (cover or near):
        raise MeasurementError("--sampling ordered draws the archs of a plain profile; --cover and --near plan theirs")
    plan = _profile_plan(resolved, n, seed, cover, near, band, predictor, ordered=sampling == "ordered")
    timing = {"batch": input_batch, "resolution": resolution or resolved.resolution, "threads": threads}
    progress = progress_bar("[bold]profiling", "{task.fields[last]}", quiet=as_json)
    protocol = timing_protocol(warmup, repeats, max_rel_iqr)
    with opened_device(runtime, remote, protocol=protocol, **timing) as device, MeasurementStore(store) as db, progress:
        task = progress.add_task("profile", total=None, last="")
        options = {
            "device_name": store_device,
            "interleave": interleave,
            "energy": energy,
            "on_progress": lambda done, total, last: progress.update(task, completed=done, total=total, last=last),
        }
        report = plan(resolved, device, db, **options)
    _print_profile(report, store, runtime, energy, as_json)


def _export_for_device(specs: list[Any], folder: Path, options: Any, protocol: Any, as_json: bool) -> None:
    """``profile --export``: the sampled archs as ONNX models with a manifest, and the runner beside them."""
    import shutil

    from edgenas.hardware.remote import export_archs, runner_path

    manifest = export_archs(specs, folder, options, protocol)
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
    """The profiling function of the chosen mode, called as ``plan(space, device, store, **profile_options)``."""
    from edgenas.search.coverage import profile_covering, profile_near

    if cover and near:
        raise MeasurementError("use either --cover (the whole range) or --near T (around targets), not both")
    if predictor is not None and not near:
        raise MeasurementError("--predictor goes with --near T (it plans the archs near T)")
    if near:
        from edgenas.predictors import Predictor

        planner = Predictor.load(predictor) if predictor is not None else None
        return lambda s, dev, db, **o: profile_near(s, dev, db, near, n, predictor=planner, band=band, seed=seed, **o)
    if cover:
        return lambda s, dev, db, **o: profile_covering(s, dev, db, n, seed=seed, **o)
    return lambda s, dev, db, **o: dev.profile(s.sample(seed=seed, n=n, ordered=ordered), db, **o)


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

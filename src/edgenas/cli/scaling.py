"""``edgenas comfort`` and ``edgenas scale``: the Comfort Zone of a network (thesis Sec 3.3.6) on a real runtime:
latency and intensity per width, and the widest width still as fast as the original."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgenas.cli._app import app, emit_json, out, resolve_one_arch
from edgenas.cli._device import device_runtime, opened_device
from edgenas.cli._options import (
    ArchArg,
    IndexOpt,
    InputBatchOpt,
    JsonOpt,
    NoiseBandOpt,
    PlotOpt,
    RemoteOpt,
    RepeatsOpt,
    RuntimeOpt,
    SetOpt,
    SpaceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    number,
    output_file,
)
from edgenas.cli.hardware import timing_protocol
from edgenas.spaces import space_of

#: Largest width scale the command accepts.
MAX_SCALE_LIMIT = 16.0


@app.command("scale")
def scale_command(
    arch: ArchArg,
    output: Annotated[Path, output_file("--output", "-o", help="Where to write the kept (scaled) spec (.json).")],
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
    space: SpaceOpt = None,
    set_: SetOpt = None,
    step: Annotated[float, number("--step", help="Width added per step.", high=4, low_open=True)] = 0.25,
    max_scale: Annotated[
        float, number("--max-scale", help="Widest scale tried.", low=1, high=MAX_SCALE_LIMIT, low_open=True)
    ] = 3.0,
    noise_band: NoiseBandOpt = 0.03,
    input_batch: InputBatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 30,
    index: IndexOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Widen ARCH step by step on RUNTIME; keep the widest network whose latency stays in the original's noise band."""
    from edgenas.compress.comfort import scale_up
    from edgenas.spaces import save_specs

    runtime = device_runtime(runtime, remote) or runtime
    spec = resolve_one_arch(arch, space, set_, index)
    timing = {"batch": input_batch, "threads": threads, "protocol": timing_protocol(warmup, repeats)}
    with opened_device(runtime, remote, **timing) as device:
        report = scale_up(spec, device, step=step, max_scale=max_scale, tolerance=noise_band)
    save_specs(output, [report.kept])
    payload = {
        "arch": str(spec),
        "runtime": runtime,
        "scale": report.scale,
        "has_zone": report.has_zone,
        "band": report.band,
        "steps": report.steps,
        "kept_options": dict(space_of(report.kept).options),
        "output": str(output),
    }
    if as_json:
        emit_json(payload)
        return
    table = Table("scale", "latency (ms)", "original (ms)", "ratio", "mult-adds (M)", "in band")
    for r in report.steps:
        table.add_row(
            f"{r['scale']:.2f}",
            f"{r['median_ms']:.3f}",
            f"{r['base_ms']:.3f}",
            f"{r['ratio']:.2f}x",
            f"{r['mult_adds_M']:.1f}",
            "yes" if r["within_band"] else "no",
        )
    out.print(table)
    if report.has_zone:
        out.print(f"Comfort Zone on {runtime}: kept width x{report.scale:g} (band +{report.band:.0%}); wrote {output}")
    else:
        out.print(
            f"no Comfort Zone on {runtime}: the first wider step left the +{report.band:.0%} band; "
            f"kept the original, wrote {output}"
        )


@app.command("comfort")
def comfort_command(
    arch: ArchArg,
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
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
    from edgenas.compress.comfort import comfort_zone, parse_scales, plot_comfort

    runtime = device_runtime(runtime, remote) or runtime
    spec = resolve_one_arch(arch, space, set_, index)
    grid = parse_scales(scales)
    timing = {"batch": input_batch, "threads": threads, "protocol": timing_protocol(warmup, repeats)}
    with opened_device(runtime, remote, **timing) as device:
        report = comfort_zone(spec, device, grid, tolerance=noise_band)
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

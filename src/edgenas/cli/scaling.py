"""``edgenas scale``: Comfort Zone scaling of a found network (thesis Sec 3.3.6) on a real runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.table import Table

from edgenas.cli._app import app, emit_json, out, resolve_one_arch
from edgenas.cli._options import (
    ArchArg,
    IndexOpt,
    InputBatchOpt,
    JsonOpt,
    NoiseBandOpt,
    RepeatsOpt,
    RuntimeOpt,
    SetOpt,
    SpaceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    number,
    output_file,
)
from edgenas.cli.hardware import _protocol, _runtime

#: Largest width scale the command accepts.
MAX_SCALE_LIMIT = 16.0


@app.command("scale")
def scale_command(
    arch: ArchArg,
    output: Annotated[Path, output_file("--output", "-o", help="Where to write the kept (scaled) spec (.json).")],
    runtime: RuntimeOpt = "ort-cpu",
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
    from edgenas.hardware.comfort import runtime_measure, scale_up
    from edgenas.spaces import save_specs, space_of

    spec = resolve_one_arch(arch, space, set_, index)
    rt = _runtime(runtime, input_batch, space_of(spec).resolution, threads)
    report = scale_up(
        spec, runtime_measure(rt, _protocol(warmup, repeats)), step=step, max_scale=max_scale, tolerance=noise_band
    )
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

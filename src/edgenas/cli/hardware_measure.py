"""``edgenas measure``: an arch's latency (and energy) on a runtime, measured now."""

from __future__ import annotations

from edgenas.cli._app import (
    app,
    emit_json,
    out,
    parse_options,
    resolve_archs,
    resolve_one_arch,
)
from edgenas.cli._options import (
    ArchArg,
    EnergyOpt,
    InputBatchOpt,
    JsonOpt,
    RepeatsOpt,
    ResolutionOpt,
    RuntimeOpt,
    SetOpt,
    SpaceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
)
from edgenas.cli.hardware import IndexAllOpt, runtime_for, timing_protocol
from edgenas.spaces import space_of


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
        rt = runtime_for(runtime, input_batch, resolution or space_of(spec).resolution, threads)
        m = measure_arch(spec, rt, timing_protocol(warmup, repeats), energy=energy)
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

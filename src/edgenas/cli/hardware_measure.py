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
from edgenas.cli._device import device_runtime, opened_device
from edgenas.cli._options import (
    ArchArg,
    EnergyOpt,
    InputBatchOpt,
    JsonOpt,
    RemoteOpt,
    RepeatsOpt,
    ResolutionOpt,
    RuntimeOpt,
    SetOpt,
    SpaceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
)
from edgenas.cli.hardware import IndexAllOpt, timing_protocol
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
    remote: RemoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure the latency (median, IQR) and, with --energy where a counter exists, the energy of architectures."""
    specs = (
        resolve_archs(arch, space, parse_options(set_))
        if index is None
        else [resolve_one_arch(arch, space, set_, index)]
    )
    runtime = device_runtime(runtime, remote) or runtime
    rows = []
    for spec in specs:
        timing = {"batch": input_batch, "resolution": resolution or space_of(spec).resolution, "threads": threads}
        with opened_device(runtime, remote, protocol=timing_protocol(warmup, repeats), energy=energy, **timing) as d:
            (m,) = d.measure([spec])
            note = d.energy_reading()[1]
        rows.append(
            {
                "space": spec.space,
                "arch": str(spec),
                "runtime": runtime,
                "input_batch": input_batch,
                "resolution": timing["resolution"],
                "threads": threads,
                **m.per_load[0].as_dict(),
                "energy_mJ": m.energy_mj,
                "energy_note": note,
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

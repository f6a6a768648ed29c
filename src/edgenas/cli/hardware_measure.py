"""``edgenas measure``: an arch's latency (and energy) on a runtime, measured now; with ``--reference``, beside the
space's reference network (issue 30): the arch's latency, the reference's in the same session (the device's level
now) and their ratio, and with ``--nominal-ms`` the latency at that nominal level."""

from __future__ import annotations

from typing import Annotated

import typer

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
    MAX_MS,
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
    number,
)
from edgenas.cli.hardware import IndexAllOpt, timing_protocol
from edgenas.hardware.reference import Anchor, reference_arch
from edgenas.spaces import space_of

ReferenceOpt = Annotated[
    bool,
    typer.Option(
        "--reference",
        help="Also time the space's reference network round by round beside each arch: print the reference's latency "
        "in the same session (the device's level now) and the ratio, which the device's drift does not move.",
    ),
]
NominalOpt = Annotated[
    float,
    number(
        "--nominal-ms",
        help="The reference's latency at the nominal level (ms; `edgenas store info` shows a store's): also print "
        "each arch's latency at that level (ratio x nominal). Implies --reference; 0: none.",
        high=MAX_MS,
    ),
]


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
    reference: ReferenceOpt = False,
    nominal_ms: NominalOpt = 0.0,
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
        anchored = reference or nominal_ms > 0
        anchor = Anchor(reference_arch(space_of(spec)), nominal_ms or None) if anchored else None
        with opened_device(runtime, remote, protocol=timing_protocol(warmup, repeats), energy=energy, **timing) as d:
            (m,) = d.with_anchor(anchor).measure([spec])
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
                "reference": m.reference,
                "relative": m.relative,
                **m.levels(),
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
        if r["relative"] is not None:
            nominal = r["nominal_level_ms"]
            at = f"; at the nominal level {nominal:.3f} ms: {r['nominal_ms']:.3f} ms" if nominal else ""
            out.print(
                f"   reference {r['level_now_ms']:.3f} ms in the same session (the level now); ratio "
                f"{r['relative']:.4f}{at}"
            )

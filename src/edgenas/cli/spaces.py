"""``edgenas space ...`` and ``edgenas arch ...``: inspect spaces, sample, show and export architectures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.table import Table

from edgenas.cli._app import (
    arch_app,
    emit_json,
    err,
    out,
    parse_options,
    resolve_archs,
    resolve_one_arch,
    space_app,
)
from edgenas.cli._options import (
    MAX_SAMPLES,
    ArchArg,
    ArchSamplingOpt,
    IndexOpt,
    InputBatchOpt,
    JsonOpt,
    MaxErrorOpt,
    OpsetOpt,
    ResolutionOpt,
    SeedOpt,
    SetOpt,
    SpaceArg,
    SpaceOpt,
    number,
    output_file,
)
from edgenas.errors import SpecFileError
from edgenas.spaces import get_space, list_spaces, save_specs, space_of, spec_to_dict


@space_app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """List the registered search spaces with their size."""
    rows = [get_space(name).describe() for name in list_spaces()]
    if as_json:
        emit_json(
            {"spaces": [{k: r[k] for k in ("space", "family", "num_layers", "size", "log10_size")} for r in rows]}
        )
        return
    table = Table("space", "family", "layers", "ops", "|A|", "input")
    for r in rows:
        table.add_row(
            r["space"],
            r["family"],
            str(r["num_layers"]),
            str(len(r["ops"])),
            f"10^{r['log10_size']:.2f}",
            "x".join(map(str, r["input_shape"][1:])),
        )
    out.print(table)


@space_app.command("show")
def space_show(
    space: SpaceArg,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a space: options, candidate ops, allowed ops per layer and |A| after masking."""
    info = get_space(space, **parse_options(set_)).describe()
    if as_json:
        emit_json(info)
        return
    out.print(f"[bold]{info['space']}[/bold] (family {info['family']}, hash {info['space_hash']})")
    out.print("options: " + ", ".join(f"{k}={v}" for k, v in info["options"].items()))
    out.print(f"ops ({len(info['ops'])}): {', '.join(info['ops'])}")
    table = Table("#", "layer", "allowed ops")
    for layer in info["layers"]:
        allowed = layer["allowed"]
        table.add_row(
            str(layer["index"]), layer["name"], "all" if len(allowed) == len(info["ops"]) else ", ".join(allowed)
        )
    out.print(table)
    out.print(f"|A| = {info['size']} (10^{info['log10_size']})")


@arch_app.command("sample")
def arch_sample(
    space: SpaceArg,
    output: Annotated[Path, output_file("--output", "-o", help="Output file (.jsonl: one spec per line).")],
    n: Annotated[int, number("--n", help="Number of architectures.", low=1, high=MAX_SAMPLES)] = 1,
    seed: SeedOpt = 0,
    set_: SetOpt = None,
    sampling: ArchSamplingOpt = "uniform",
    as_json: JsonOpt = False,
) -> None:
    """Sample N architectures from SPACE (uniformly, or --sampling ordered) and write them as JSON Lines."""
    if output.suffix != ".jsonl" and n > 1:
        raise SpecFileError(f"{output}: {n} specs need a .jsonl file")
    resolved = get_space(space, **parse_options(set_))
    specs = resolved.sample(seed=seed, n=n, ordered=sampling == "ordered")
    save_specs(output, specs)
    if as_json:
        emit_json(
            {"output": str(output), "space": resolved.name, "n": n, "seed": seed, "archs": [str(s) for s in specs]}
        )
        return
    for spec in specs:
        out.print(str(spec))
    err.print(f"wrote {n} spec(s) of {resolved.name} to {output}")


@arch_app.command("show")
def arch_show(
    arch: ArchArg,
    space: SpaceOpt = None,
    set_: SetOpt = None,
    input_batch: InputBatchOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Show architectures with their params, FLOPs, memory accesses and arithmetic intensity."""
    from edgenas.nn.costs import measure_costs

    rows = []
    for spec in resolve_archs(arch, space, parse_options(set_)):
        resolved = space_of(spec)
        costs = measure_costs(resolved.build(spec), resolved.input_shape(input_batch))
        rows.append({**spec_to_dict(spec), "costs": costs.as_dict()})
    if as_json:
        emit_json({"archs": rows})
        return
    table = Table("#", "space", "params (M)", "MFLOPs", "mult-adds (M)", "mem. accesses (M)", "intensity")
    for i, r in enumerate(rows):
        c = r["costs"]
        out.print(f"[bold]#{i}[/bold] {r['arch']}")
        table.add_row(
            str(i),
            r["space"],
            f"{c['params_M']:.3f}",
            f"{c['mflops']:.1f}",
            f"{c['mult_adds_M']:.1f}",
            f"{c['memory_accesses_M']:.2f}",
            f"{c['intensity']:.2f}",
        )
    out.print(table)
    out.print(
        f"input {'x'.join(map(str, rows[0]['costs']['input_shape']))}; FLOPs counted by torch.utils.flop_counter "
        "(2 per multiply-add); memory accesses and intensity as in thesis Eq 3.18-3.19"
    )


@arch_app.command("export")
def arch_export(
    arch: ArchArg,
    output: Annotated[Path, output_file("--output", "-o", help="Output .onnx file.")],
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = 0,
    input_batch: InputBatchOpt = 1,
    resolution: ResolutionOpt = None,
    opset: OpsetOpt = 17,
    max_error: MaxErrorOpt = 1e-4,
    as_json: JsonOpt = False,
) -> None:
    """Export one architecture to ONNX and verify it against PyTorch with ONNX Runtime."""
    from edgenas.export import export_onnx
    from edgenas.nn.reparam import collapsed_copy

    spec = resolve_one_arch(arch, space, set_, index)
    resolved = space_of(spec)
    result = export_onnx(
        collapsed_copy(resolved.build(spec)),
        output,
        resolved.input_shape(input_batch, resolution),
        opset=opset,
        tolerance=max_error,
    )
    payload = {
        "output": str(result.path),
        "arch": str(spec),
        "space": spec.space,
        "input_shape": list(result.input_shape),
        "opset": result.opset,
        "max_abs_error": result.max_abs_error,
        "rel_error": result.rel_error,
        "size_bytes": result.size_bytes,
    }
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"exported {spec.space} arch to {result.path} ({result.size_bytes / 1e6:.2f} MB, input "
        f"{'x'.join(map(str, result.input_shape))}); ONNX Runtime vs PyTorch: rel. error {result.rel_error:.2e}"
    )

"""``edgenas graft`` and ``edgenas reparam``: linearity grafting and the collapse of grafted blocks (Domino)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import app, emit_json, out
from edgenas.cli._options import (
    InputBatchOpt,
    JsonOpt,
    MaxErrorOpt,
    OpsetOpt,
    ResolutionOpt,
    number,
    output_file,
)

#: Domino-Pro widening above this factor is refused (the thesis widens by at most 4x).
MAX_PRO_WIDTH = 16.0

ModelArg = Annotated[
    str,
    typer.Argument(
        help="torchvision:NAME (mobilenet_v2, resnet50, ...), a spec file, an edgenas train run or a .pt model file."
    ),
]
NumClassesOpt = Annotated[
    int | None,
    number("--num-classes", help="Classifier size of a torchvision: model (default 1000).", low=1, high=1_000_000),
]


def _costs(model: Any, resolution: int) -> dict[str, float]:
    from edgenas.nn.costs import measure_costs

    report = measure_costs(model, (1, 3, resolution, resolution))
    return {"params": report.params, "mult_adds": report.mult_adds}


@app.command("graft")
def graft_command(
    model: ModelArg,
    mask: Annotated[
        str,
        typer.Option("--mask", help="One 0 (graft) or 1 (keep) per graftable block in order, or 'all' / 'none'."),
    ],
    output: Annotated[Path, output_file("--output", "-o", help="Output model file (.pt).")],
    keep_activation: Annotated[
        bool,
        typer.Option(
            "--keep-activation/--no-keep-activation", help="Keep one activation at the end of each grafted block."
        ),
    ] = True,
    pro_width: Annotated[
        float | None,
        number("--pro-width", help="Domino-Pro: widen the inner channels by this factor.", low=1, high=MAX_PRO_WIDTH),
    ] = None,
    pro_extra: Annotated[
        int, number("--pro-extra", help="Domino-Pro: extra 1x1 convs per grafted block.", high=16)
    ] = 1,
    num_classes: NumClassesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Graft the inner activations of the blocks a mask selects into identities (thesis Ch 5) and save the model.

    The file keeps the model's recipe and weights; `edgenas reparam` collapses it, `edgenas graft` can graft it again.
    """
    from edgenas.models import graft_loaded, load_model, save_model_file
    from edgenas.nn import DominoPro, GraftedBlock, graftable_blocks, reparameterize

    if output.suffix != ".pt":
        from edgenas.errors import OutputPathError

        raise OutputPathError(f"the model file must end in .pt (got {output})")
    loaded = load_model(model, num_classes=num_classes)
    n_blocks = len(graftable_blocks(loaded.model))
    pro = DominoPro(width=pro_width, extra_pointwise=pro_extra) if pro_width is not None else None
    before = _costs(loaded.model, loaded.resolution)
    graft_loaded(loaded, mask, keep_activation=keep_activation, pro=pro)
    grafted = sum(isinstance(m, GraftedBlock) for m in loaded.model.modules())
    training_form = _costs(loaded.model, loaded.resolution)
    collapsed = _costs(reparameterize(loaded.model), loaded.resolution)
    save_model_file(output, loaded)
    payload = {
        "output": str(output),
        "model": model,
        "blocks": n_blocks,
        "grafted": grafted,
        "mask": loaded.graft_steps[-1]["mask"],
        "resolution": loaded.resolution,
        "original": before,
        "training_form": training_form,
        "collapsed": collapsed,
    }
    if as_json:
        emit_json(payload)
        return
    out.print(f"grafted {grafted} of {n_blocks} blocks of {model} -> {output}")
    for name, costs in (("original", before), ("training form", training_form), ("collapsed", collapsed)):
        out.print(
            f"  {name:<14} {costs['params'] / 1e6:8.3f} M params  {costs['mult_adds'] / 1e6:9.1f} M mult-adds "
            f"at {loaded.resolution}x{loaded.resolution}"
        )


@app.command("reparam")
def reparam_command(
    model: ModelArg,
    output: Annotated[Path, output_file("--output", "-o", help="Output .onnx file of the collapsed network.")],
    check: Annotated[
        bool, typer.Option("--check", help="Compare collapsed and original outputs in float64; fail above --max-error.")
    ] = False,
    max_error: MaxErrorOpt = 1e-4,
    input_batch: InputBatchOpt = 1,
    resolution: ResolutionOpt = None,
    num_classes: NumClassesOpt = None,
    opset: OpsetOpt = 17,
    as_json: JsonOpt = False,
) -> None:
    """Collapse every grafted block into one conv, fold the remaining BatchNorms, export to ONNX and verify it."""
    from edgenas.errors import ReparamError
    from edgenas.export import export_onnx
    from edgenas.models import load_model
    from edgenas.nn import GraftedBlock, reparameterize
    from edgenas.nn.reparam import collapse_error

    loaded = load_model(model, num_classes=num_classes)
    size = resolution or loaded.resolution
    shape = (input_batch, 3, size, size)
    collapsed = reparameterize(loaded.model)
    check_error = None
    if check:
        check_error = collapse_error(loaded.model, shape)
        if not check_error <= max_error:
            raise ReparamError(
                f"the collapsed network differs from the original by {check_error:.2e} (relative, float64), "
                f"above --max-error {max_error:g}"
            )
    result = export_onnx(collapsed, output, shape, opset=opset, tolerance=max_error)
    grafted = sum(isinstance(m, GraftedBlock) for m in loaded.model.modules())
    payload = {
        "output": str(result.path),
        "model": model,
        "grafted_blocks": grafted,
        "input_shape": list(shape),
        "check_rel_error": check_error,
        "onnx_rel_error": result.rel_error,
        "size_bytes": result.size_bytes,
        "before": _costs(loaded.model, size),
        "after": _costs(collapsed, size),
    }
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"collapsed {grafted} grafted blocks of {model} -> {result.path} ({result.size_bytes / 1e6:.2f} MB, input "
        f"{'x'.join(map(str, shape))})"
    )
    if check_error is not None:
        out.print(f"  collapsed vs original (float64): rel. error {check_error:.2e}")
    out.print(f"  ONNX Runtime vs PyTorch: rel. error {result.rel_error:.2e}")
    out.print(
        f"  params {payload['before']['params'] / 1e6:.3f} M -> {payload['after']['params'] / 1e6:.3f} M, "
        f"mult-adds {payload['before']['mult_adds'] / 1e6:.1f} M -> {payload['after']['mult_adds'] / 1e6:.1f} M "
        f"at {size}x{size}"
    )

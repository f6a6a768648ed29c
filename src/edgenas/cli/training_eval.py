"""``edgenas eval``: the test accuracy of a run, a checkpoint or a model file (optionally in its deployed,
collapsed form)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import app, emit_json, out
from edgenas.cli._options import (
    BatchSizeOpt,
    DataOpt,
    DatasetKindOpt,
    JsonOpt,
    TestSubsetOpt,
    TorchDeviceOpt,
)
from edgenas.errors import ModelSourceError


@app.command("eval")
def eval_command(
    run: Annotated[
        Path,
        typer.Argument(help="A run directory, a checkpoint or a model file (.pt, e.g. a graft file).", exists=True),
    ],
    data: DataOpt = None,
    dataset: DatasetKindOpt = "auto",
    batch_size: BatchSizeOpt = 256,
    test_subset: TestSubsetOpt = None,
    collapse: Annotated[
        bool, typer.Option("--collapse", help="Evaluate the deployed form: grafted blocks collapsed, BN folded.")
    ] = False,
    device: TorchDeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a trained network or model file (top-1, top-5, loss) on the test split of a dataset."""
    import torch

    from edgenas.models import load_model
    from edgenas.train import balanced_subset, evaluate, load_dataset

    path = run
    if run.is_dir():
        found = [p for p in (run / "model.pt", run / "checkpoints" / "last.pt") if p.is_file()]
        if not found:
            raise ModelSourceError(
                f"{run} is a folder but not an edgenas training run: it holds neither model.pt nor checkpoints/last.pt"
            )
        path = found[0]
    loaded = load_model(path)
    model = loaded.model
    if collapse:
        from edgenas.nn import reparameterize

        model = reparameterize(model)
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    images = load_dataset(data, kind=dataset, image_size=loaded.resolution)
    subset = balanced_subset(images.test_labels, test_subset) if test_subset else None
    result = evaluate(
        model.to(dev), images, batch_size=batch_size, device=dev, subset=subset, input_size=loaded.resolution
    )
    name = _model_name(loaded.recipe)
    payload = {"checkpoint": str(path), "arch": name, "collapsed": collapse, "data": images.describe(), **result}
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"{path}{' (collapsed)' if collapse else ''}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%, "
        f"loss {result['loss']:.4f} on {result['n']} {images.name} test images"
    )


def _model_name(recipe: dict[str, Any]) -> str:
    """A model recipe in words: the arch string of a spec, or the torchvision name, plus its grafting masks."""
    from edgenas.spaces import spec_from_dict

    name = str(spec_from_dict(recipe["arch"])) if "arch" in recipe else f"torchvision:{recipe.get('torchvision')}"
    masks = [step["mask"] for step in recipe.get("graft", [])]
    return name + "".join(f" grafted {mask}" for mask in masks)

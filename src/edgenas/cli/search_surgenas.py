"""``edgenas search surgenas``: SurgeNAS (thesis Ch 3) with its own options (beta, identity mapping, path sampling)
and the thesis' settings as defaults (:data:`edgenas.search.surgenas.THESIS_SETTINGS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from edgenas.cli._app import emit_json, out, parse_options
from edgenas.cli._device import device_runtime
from edgenas.cli._options import (
    BatchSizeOpt,
    DataOpt,
    JsonOpt,
    RemoteOpt,
    SearchSetOpt,
    SeedOpt,
    SetOpt,
    SubsetOpt,
    TorchDeviceOpt,
    choice,
    input_file,
    number,
)
from edgenas.cli._search_job import LandingArgs, search_device, search_with_progress
from edgenas.cli.search import (
    MAX_EPOCHS,
    OutputOpt,
    ResumeOpt,
    RuntimeOpt,
    SearchSpaceOpt,
    search_app,
)

#: How the paths of a weight step are drawn (``edgenas.search.engine.PATH_SAMPLINGS``, listed here so the command
#: does not import torch before it runs).
PATH_SAMPLINGS = ("ordered", "independent")
#: Largest beta the command accepts (per ms of the predictor).
MAX_BETA = 1e6


def _config(space: Any, options: dict[str, Any], warmup_epochs: int | None) -> Any:
    """The SurgeNAS :class:`~edgenas.search.engine.SearchConfig`: the space's search loop (on ``nb201``: the
    identity once per cell, PyTorch's init, affine-free cells), the thesis' settings over it, the command's options
    on top, and the thesis' share of warm-up epochs unless ``--warmup-epochs`` is given."""
    from dataclasses import replace

    from edgenas.search.engine import SearchConfig
    from edgenas.search.surgenas import surgenas_config

    base = SearchConfig.for_space(space, epochs=options["epochs"])
    config = surgenas_config(base, warmup=warmup_epochs is None)
    config = replace(config, **options)
    return config if warmup_epochs is None else replace(config, warmup_epochs=warmup_epochs)


@search_app.command("surgenas")
def surgenas_command(
    space: SearchSpaceOpt,
    output: OutputOpt,
    data: DataOpt = None,
    set_: SetOpt = None,
    search_set: SearchSetOpt = None,
    predictor: Annotated[
        Path | None,
        input_file("--predictor", help="Latency (or energy) predictor (.pt) of this space, priced by --beta."),
    ] = None,
    beta: Annotated[
        float,
        number("--beta", help="Trade-off: loss CE + beta * LAT per path (1/ms; 0 = accuracy only).", high=MAX_BETA),
    ] = 0.0,
    epochs: Annotated[int, number("--epochs", help="Total epochs (thesis: 75).", low=1, high=MAX_EPOCHS)] = 75,
    warmup_epochs: Annotated[
        int | None,
        number("--warmup-epochs", help="Weights-only epochs (default: a third, as thesis' 25 of 75).", high=MAX_EPOCHS),
    ] = None,
    batch_size: BatchSizeOpt = 128,
    subset: SubsetOpt = None,
    identity_phi: Annotated[
        float,
        number("--identity-phi", help="Identity mapping's phi at the start, decaying to 0 (thesis: 2).", high=100),
    ] = 2.0,
    sampling: Annotated[
        str,
        choice(
            "--sampling",
            values=PATH_SAMPLINGS,
            help="Paths per step: ordered (thesis Alg. 1, without replacement) or independent (the ablation).",
        ),
    ] = "ordered",
    alpha_lr: Annotated[
        float, number("--alpha-lr", help="Adam lr of alpha, constant (thesis: 7.5e-4).", high=10, low_open=True)
    ] = 7.5e-4,
    w_lr: Annotated[float, number("--w-lr", help="SGD lr of the weights, cosine (thesis: 0.1).", high=10)] = 0.1,
    tau_start: Annotated[
        float, number("--tau-start", help="Gumbel temperature at the start (thesis: 1).", high=100, low_open=True)
    ] = 1.0,
    runtime: RuntimeOpt = None,
    remote: RemoteOpt = None,
    seed: SeedOpt = 0,
    device: TorchDeviceOpt = "auto",
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """SurgeNAS: one-level search, ordered fair paths, identity mapping, loss CE + beta * LAT (thesis Ch 3)."""
    from edgenas.errors import SearchError
    from edgenas.predictors import Predictor
    from edgenas.search.engine import Target
    from edgenas.spaces import get_space
    from edgenas.train import load_dataset
    from edgenas.train.distributed import init_distributed, shutdown_distributed

    if beta and predictor is None:
        raise SearchError("--beta prices the paths with a predictor: give --predictor P.pt")
    runtime = device_runtime(runtime, remote)
    resolved = get_space(space, **parse_options(set_))
    options = {
        "epochs": epochs,
        "batch_size": batch_size,
        "train_subset": subset or 0,
        "seed": seed,
        "device": device,
        "beta": beta,
        "identity_phi": identity_phi,
        "path_sampling": sampling,
        "alpha_lr": alpha_lr,
        "w_lr": w_lr,
        "tau_start": tau_start,
        "supernet_options": parse_options(search_set, "--search-set"),
    }
    config = _config(resolved, options, warmup_epochs)
    config.check()
    targets = [Target(Predictor.load(predictor), None)] if predictor is not None else []
    images = load_dataset(data, image_size=resolved.resolution)
    unit = targets[0].unit if targets else ""
    env = init_distributed(config.device)  # under torchrun: one process per rank, the same paths on every rank
    try:
        result = search_with_progress(
            resolved, targets, images, config, output, env=env, resume=resume, quiet=as_json, unit=unit
        )
    finally:
        shutdown_distributed()
    if not env.is_main:
        return
    arch, summary = result.arch, result.summary
    if runtime is not None:
        from edgenas.search.landing import measure_result

        on_device = search_device(LandingArgs(runtime, remote=remote), resolved, output)
        summary["measured"] = measure_result(arch, on_device, [], 0.0, output)
    if as_json:
        emit_json({"run_dir": str(output), **summary})
        return
    _print(arch, summary, output)


def _print(arch: Any, summary: dict[str, Any], output: Path) -> None:
    out.print(f"surgenas: derived {arch}")
    for t in summary.get("targets", []):
        out.print(f"  predicted {t['metric']}: {t['predicted']:.4g} {t['unit']}")
    if "measured" in summary:
        m = summary["measured"]
        out.print(f"  measured on {m['runtime']}: {m['median_ms']:.4g} ms (IQR {m['iqr_ms']:.2g})")
    out.print(f"  per-layer softmax of alpha over the search: {output / 'alpha.png'}")
    out.print(f"  run directory: {output}")

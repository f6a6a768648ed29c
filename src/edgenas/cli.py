"""The ``edgenas`` command line: one Typer app, each command a thin wrapper over a public function.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. User errors (``EdgeNASError``)
become one red line on stderr and exit code 2; nothing is left half-written because the library writes atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgenas.errors import EdgeNASError, SpaceConfigError, SpecFileError
from edgenas.spaces import ArchSpec, get_space, list_spaces, load_specs, save_specs, space_of, spec_to_dict
from edgenas.spaces.spec import freeze

app = typer.Typer(
    name="edgenas",
    help="Hardware-aware neural architecture search and compression for a given device under a given budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Inspect search spaces.", no_args_is_help=True)
arch_app = typer.Typer(help="Sample, inspect and export architectures.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(arch_app, name="arch")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Space option, e.g. --set width=0.5 (repeatable; JSON values)."),
]
SpaceOpt = Annotated[str | None, typer.Option("--space", "-s", help="Space of ARCH when ARCH is a string.")]
ArchArg = Annotated[str, typer.Argument(help="A spec file (.json/.jsonl) or an arch string with --space.")]


def _print_version(value: bool) -> None:
    if value:
        from edgenas import __version__

        out.print(f"edgenas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Hardware-aware neural architecture search and compression for a given device under a given budget."""


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SpaceConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip()] = freeze(value)
    return options


def resolve_archs(arch: str, space: str | None, options: dict[str, Any]) -> list[ArchSpec]:
    """Specs named by ARCH: a spec file, an arch string of ``space``, or an NB201 index with ``--space nb201``."""
    path = Path(arch)
    if path.is_file():
        if space is not None or options:
            raise SpaceConfigError("--space/--set apply to arch strings; a spec file names its own space")
        return load_specs(path)
    if path.suffix in (".json", ".jsonl"):
        raise SpecFileError(f"no such spec file: {path}")
    if space is None:
        raise SpecFileError(f"{arch!r} is not a spec file; to give an arch string, name its space with --space")
    resolved = get_space(space, **options)
    if arch.isdigit() and hasattr(resolved, "from_index"):
        return [resolved.from_index(int(arch))]
    return [resolved.parse(arch)]


@space_app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """List the registered search spaces with their size."""
    rows = [get_space(name).describe() for name in list_spaces()]
    if as_json:
        _emit_json(
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
    space: Annotated[str, typer.Argument(help="Registered space name.")],
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a space: options, candidate ops, allowed ops per layer and |A| after masking."""
    info = get_space(space, **_parse_options(set_)).describe()
    if as_json:
        _emit_json(info)
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
    space: Annotated[str, typer.Argument(help="Registered space name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.jsonl: one spec per line).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of architectures.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample N architectures uniformly from SPACE and write them as JSON Lines."""
    resolved = get_space(space, **_parse_options(set_))
    specs = resolved.sample(seed=seed, n=n)
    if output.suffix != ".jsonl" and n > 1:
        raise SpecFileError(f"{output}: {n} specs need a .jsonl file")
    save_specs(output, specs)
    if as_json:
        _emit_json(
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
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size for the cost figures.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Show architectures with their params, FLOPs, memory accesses and arithmetic intensity."""
    from edgenas.nn.costs import measure_costs

    rows = []
    for spec in resolve_archs(arch, space, _parse_options(set_)):
        resolved = space_of(spec)
        costs = measure_costs(resolved.build(spec), resolved.input_shape(batch))
        rows.append({**spec_to_dict(spec), "costs": costs.as_dict()})
    if as_json:
        _emit_json({"archs": rows})
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
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .onnx file.")],
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: Annotated[int, typer.Option("--index", min=0, help="Which spec of a multi-spec file (0-based).")] = 0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Static batch size of the graph.")] = 1,
    resolution: Annotated[
        int | None, typer.Option("--resolution", min=1, help="Input size (px); default: the space's.")
    ] = None,
    opset: Annotated[int, typer.Option("--opset", min=9, help="ONNX opset version.")] = 17,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted relative error vs PyTorch.")] = 1e-4,
    as_json: JsonOpt = False,
) -> None:
    """Export one architecture to ONNX and verify it against PyTorch with ONNX Runtime."""
    from edgenas.export import export_onnx

    specs = resolve_archs(arch, space, _parse_options(set_))
    if index >= len(specs):
        raise SpecFileError(f"--index {index} is out of range: {arch} holds {len(specs)} spec(s)")
    spec = specs[index]
    resolved = space_of(spec)
    result = export_onnx(
        resolved.build(spec), output, resolved.input_shape(batch, resolution), opset=opset, tolerance=tolerance
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
        _emit_json(payload)
        return
    out.print(
        f"exported {spec.space} arch to {result.path} ({result.size_bytes / 1e6:.2f} MB, input "
        f"{'x'.join(map(str, result.input_shape))}); ONNX Runtime vs PyTorch: rel. error {result.rel_error:.2e}"
    )


# ----- training -------------------------------------------------------------------------------------------------
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data", help="Dataset folder (default: $EDGENAS_DATA); 'sample' = the CIFAR-10 sample shipped inside."
    ),
]
DatasetKindOpt = Annotated[str, typer.Option("--dataset", help="auto, cifar10 or imagefolder.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


class _ProgressCallback:
    """Draws a rich progress bar per epoch and prints each epoch's record (rank 0 only)."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  lr {task.fields[lr]:.4f}"),
            console=err,
            transient=True,
            disable=quiet,
        )
        self.task: Any = None
        self.epochs = self.steps = 0

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.epochs, self.steps = info["epochs"], info["steps_per_epoch"]
        self.progress.start()
        self._new_task(info["start_epoch"] + 1, info["start_step"])

    def _new_task(self, epoch: int, done: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            "train", total=self.steps, completed=done, epoch=epoch, epochs=self.epochs, loss=float("nan"), lr=0.0
        )

    def on_step_end(self, info: dict[str, Any]) -> None:
        self.progress.update(self.task, completed=info["step"], loss=info["loss"], lr=info["lr"], epoch=info["epoch"])

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if not self.quiet:
            self.progress.console.print(
                f"epoch {record['epoch']}/{self.epochs}: train loss {record['train_loss']:.3f} top-1 "
                f"{record['train_top1']:.1f}%  |  test loss {record['test_loss']:.3f} top-1 "
                f"{record['test_top1']:.2f}% top-5 {record['test_top5']:.2f}%  |  {record['epoch_time_s']:.1f} s, "
                f"{record['images_per_s']:.0f} img/s"
            )
        if record["epoch"] < self.epochs:
            self._new_task(record["epoch"] + 1, 0)

    def close(self) -> None:
        self.progress.stop()


@app.command("train")
def train_command(
    arch: ArchArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory.")],
    data: DataOpt = None,
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: Annotated[int, typer.Option("--index", min=0, help="Which spec of a multi-spec file (0-based).")] = 0,
    dataset: DatasetKindOpt = "auto",
    classes: Annotated[int | None, typer.Option("--classes", min=1, help="ImageFolder: random class subset.")] = None,
    class_seed: Annotated[int, typer.Option("--class-seed", help="Seed of the class subset.")] = 0,
    download: Annotated[bool, typer.Option("--download", help="Download CIFAR-10 when absent (online).")] = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Global batch size.")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 0.1,
    momentum: Annotated[float, typer.Option("--momentum")] = 0.9,
    nesterov: Annotated[bool, typer.Option("--nesterov")] = False,
    weight_decay: Annotated[float, typer.Option("--weight-decay", "--wd")] = 5e-4,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs")] = 0.0,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing")] = 0.0,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Max gradient norm; 0 = off.")] = 0.0,
    amp: Annotated[str, typer.Option("--amp", help="none, bf16 or fp16 (CUDA).")] = "none",
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic kernels.")] = False,
    subset: Annotated[int | None, typer.Option("--subset", min=1, help="Class-balanced training subset.")] = None,
    test_subset: Annotated[int | None, typer.Option("--test-subset", min=1, help="Class-balanced test subset.")] = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment")] = True,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, help="Also every N steps.")] = 0,
    log_every: Annotated[int, typer.Option("--log-every", min=0, help="Step records every N steps.")] = 50,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data-loader worker processes.")] = 0,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the output directory.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train an architecture and write a run directory (works under torchrun for several processes)."""
    import torch

    from edgenas.train import TrainConfig, load_dataset, train
    from edgenas.train.distributed import init_distributed, shutdown_distributed

    specs = resolve_archs(arch, space, _parse_options(set_))
    if index >= len(specs):
        raise SpecFileError(f"--index {index} is out of range: {arch} holds {len(specs)} spec(s)")
    spec = specs[index]
    resolved = space_of(spec)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        label_smoothing=label_smoothing,
        grad_clip=grad_clip,
        amp=amp,
        channels_last=channels_last,
        seed=seed,
        deterministic=deterministic,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        num_workers=workers,
        train_subset=subset,
        test_subset=test_subset,
        augment=augment,
        device=device,
    )
    config.validate()
    images = load_dataset(
        data,
        kind=dataset,
        image_size=resolved.resolution,
        num_classes=classes,
        class_seed=class_seed,
        download=download,
    )
    if images.num_classes != int(dict(spec.options).get("num_classes", images.num_classes)):
        raise SpaceConfigError(
            f"the dataset has {images.num_classes} classes but the space is configured for "
            f"{dict(spec.options)['num_classes']}; add --set num_classes={images.num_classes}"
        )
    env = init_distributed(device)
    torch.manual_seed(seed)
    model = resolved.build(spec)
    progress = _ProgressCallback(quiet=as_json or not env.is_main)
    try:
        result = train(
            model,
            images,
            config,
            output,
            spec=spec,
            resume=resume,
            callbacks=[progress],
            dist_env=env,
            input_size=resolved.resolution,
        )
    finally:
        progress.close()
        shutdown_distributed()
    if not env.is_main:
        return
    if as_json:
        _emit_json({"run_dir": str(result.run_dir), "arch": str(spec), "final": result.final})
        return
    f = result.final
    out.print(
        f"{spec.space} arch trained for {f['epoch']} epoch(s): test top-1 {f['test_top1']:.2f}%, top-5 "
        f"{f['test_top5']:.2f}% on {f['test_n']} images; run directory {result.run_dir}"
    )


@app.command("eval")
def eval_command(
    run: Annotated[Path, typer.Argument(help="A run directory or a checkpoint file (.pt).")],
    data: DataOpt = None,
    dataset: DatasetKindOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    test_subset: Annotated[int | None, typer.Option("--test-subset", min=1, help="Class-balanced test subset.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a trained network (top-1, top-5, loss) on the test split of a dataset."""
    import torch

    from edgenas.errors import CheckpointError
    from edgenas.spaces import spec_from_dict
    from edgenas.train import balanced_subset, evaluate, load_checkpoint, load_dataset

    path = run
    if run.is_dir():
        path = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path)
    if not ckpt.get("arch") or "model" not in ckpt:
        raise CheckpointError(f"{path} does not record an architecture and weights; it is not an edgenas run")
    spec = spec_from_dict(ckpt["arch"], source=str(path))
    resolved = space_of(spec)
    model = resolved.build(spec)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the recorded architecture ({str(exc).splitlines()[0]})"
        ) from exc
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    images = load_dataset(data, kind=dataset, image_size=resolved.resolution)
    subset = balanced_subset(images.test_labels, test_subset) if test_subset else None
    result = evaluate(
        model.to(dev), images, batch_size=batch_size, device=dev, subset=subset, input_size=resolved.resolution
    )
    payload = {"checkpoint": str(path), "arch": str(spec), "data": images.describe(), **result}
    if as_json:
        _emit_json(payload)
        return
    out.print(
        f"{path}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%, loss {result['loss']:.4f} on "
        f"{result['n']} {images.name} test images"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2.

    Usage errors (a missing argument, a bad option value) are Typer's own: a short usage text and exit code 2.
    """
    try:
        app(args=argv, prog_name="edgenas")
    except EdgeNASError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None

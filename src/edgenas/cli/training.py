"""``edgenas train`` and ``edgenas eval``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas._random import seeded_torch
from edgenas.cli._app import app, emit_json, out, resolve_one_arch
from edgenas.cli._options import (
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_SEED,
    BatchSizeOpt,
    DataOpt,
    DatasetKindOpt,
    EpochsOpt,
    IndexOpt,
    JsonOpt,
    SeedOpt,
    SetOpt,
    SpaceOpt,
    SubsetOpt,
    TestSubsetOpt,
    TorchDeviceOpt,
    choice,
    number,
    run_dir,
)
from edgenas.cli._progress import progress_bar
from edgenas.errors import SpaceConfigError
from edgenas.spaces import space_of

MAX_LR = 100.0
MAX_WEIGHT_DECAY = 1.0


class _ProgressCallback:
    """Draws a rich progress bar per epoch and prints each epoch's record (rank 0 only)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = progress_bar(
            "[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}",
            "loss {task.fields[loss]:.3f}  lr {task.fields[lr]:.4f}",
            quiet=quiet,
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
    arch: Annotated[
        str,
        typer.Argument(
            help="A spec file (.json/.jsonl), an arch string with --space, or a model: torchvision:NAME, a .pt "
            "model/graft file or a train run."
        ),
    ],
    output: Annotated[Path, run_dir("--output", "-o", help="Run directory.")],
    data: DataOpt = None,
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = 0,
    dataset: DatasetKindOpt = "auto",
    classes: Annotated[
        int | None, number("--classes", help="ImageFolder: random class subset.", low=1, high=MAX_COUNT)
    ] = None,
    class_seed: Annotated[int, number("--class-seed", help="Seed of the class subset.", high=MAX_SEED)] = 0,
    download: Annotated[bool, typer.Option("--download", help="Download CIFAR-10 when absent (online).")] = False,
    epochs: EpochsOpt = 1,
    batch_size: BatchSizeOpt = 128,
    lr: Annotated[float, number("--lr", help="Peak learning rate.", high=MAX_LR, low_open=True)] = 0.1,
    momentum: Annotated[float, number("--momentum", help="SGD momentum.", high=1, high_open=True)] = 0.9,
    nesterov: Annotated[bool, typer.Option("--nesterov", help="Nesterov momentum.")] = False,
    weight_decay: Annotated[
        float, number("--weight-decay", "--wd", help="Weight decay (not on BN and biases).", high=MAX_WEIGHT_DECAY)
    ] = 5e-4,
    lr_warmup_epochs: Annotated[
        float,
        number("--lr-warmup-epochs", help="Linear learning-rate warm-up (epochs, may be fractional).", high=MAX_EPOCHS),
    ] = 0.0,
    label_smoothing: Annotated[
        float, number("--label-smoothing", help="Label smoothing.", high=1, high_open=True)
    ] = 0.0,
    grad_clip: Annotated[float, number("--grad-clip", help="Max gradient norm; 0 = off.", high=1e6)] = 0.0,
    amp: Annotated[
        str, choice("--amp", values=("none", "bf16", "fp16"), help="Mixed precision (fp16: CUDA).")
    ] = "none",
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="Channels-last memory.")
    ] = True,
    seed: SeedOpt = 0,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic kernels.")] = False,
    subset: SubsetOpt = None,
    test_subset: TestSubsetOpt = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Random crop and flip.")] = True,
    checkpoint_every: Annotated[
        int, number("--checkpoint-every", help="Also checkpoint every N steps (0 = per epoch only).", high=MAX_COUNT)
    ] = 0,
    log_every: Annotated[int, number("--log-every", help="Step records every N steps (0 = off).", high=MAX_COUNT)] = 50,
    workers: Annotated[int, number("--workers", help="Data-loader worker processes.", high=256)] = 0,
    device: TorchDeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the output directory.")] = False,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", help="Distil from this model (a train run, model file or spec; thesis Fig 5.13)."),
    ] = None,
    distill_weight: Annotated[
        float, number("--distill-weight", help="Weight of the distillation term (with --teacher).", high=1)
    ] = 0.5,
    distill_temperature: Annotated[
        float, number("--distill-temperature", help="Temperature of the distillation term.", high=100, low_open=True)
    ] = 4.0,
    resolution: Annotated[
        int | None,
        number("--resolution", help="Input side of a torchvision: model (default: the images' own).", low=8, high=1024),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train an architecture or a model (torchvision:NAME, a graft file, a run) and write a run directory (works
    under torchrun for several processes)."""

    from edgenas.train import TrainConfig, train
    from edgenas.train.distributed import init_distributed, shutdown_distributed

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        warmup_epochs=lr_warmup_epochs,
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
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
    )
    config.validate()
    options = {"kind": dataset, "num_classes": classes, "class_seed": class_seed, "download": download}
    env = init_distributed(device)
    with seeded_torch(seed):  # the same initial weights on every rank
        target = _training_target(arch, space, set_, index, resolution, data, options)
    if teacher is not None:
        from edgenas.models import load_model

        teacher_model = load_model(teacher).model
    progress = _ProgressCallback(quiet=as_json or not env.is_main)
    try:
        result = train(
            target.model,
            target.images,
            config,
            output,
            spec=target.spec,
            recipe=target.recipe,
            resume=resume,
            callbacks=[progress],
            dist_env=env,
            input_size=target.resolution,
            teacher=teacher_model if teacher is not None else None,
        )
    finally:
        progress.close()
        shutdown_distributed()
    if not env.is_main:
        return
    if as_json:
        emit_json({"run_dir": str(result.run_dir), "arch": target.name, "final": result.final})
        return
    f = result.final
    out.print(
        f"{target.name} trained for {f['epoch']} epoch(s): test top-1 {f['test_top1']:.2f}%, top-5 "
        f"{f['test_top5']:.2f}% on {f['test_n']} images; run directory {result.run_dir}"
    )


@dataclass
class _Target:
    """What `edgenas train` trains: the network, the data, and how the run records it (a spec or a recipe)."""

    model: Any
    images: Any
    resolution: int
    name: str
    spec: Any = None
    recipe: dict[str, Any] | None = None


def _training_target(
    arch: str,
    space: str | None,
    set_: list[str] | None,
    index: int,
    resolution: int | None,
    data: Path | None,
    options: dict[str, Any],
) -> _Target:
    """A spec of a space (built fresh) or a model reference (torchvision: fresh; a file or run: its weights)."""
    from edgenas.models import is_model_reference, load_model
    from edgenas.train import load_dataset

    if is_model_reference(arch) and space is None:
        images = load_dataset(data, image_size=resolution, **options)
        fresh = arch.startswith("torchvision:")
        loaded = load_model(
            arch,
            num_classes=images.num_classes if fresh else None,
            resolution=(resolution or images.image_size) if fresh else None,
        )
        if resolution is not None and not fresh:
            raise SpaceConfigError("--resolution applies to torchvision: models; a model file fixes its input")
        return _Target(loaded.model, images, loaded.resolution, arch, recipe=loaded.recipe)
    if resolution is not None:
        raise SpaceConfigError("--resolution applies to torchvision: models; a spec's space fixes its input")
    spec = resolve_one_arch(arch, space, set_, index)
    resolved = space_of(spec)
    images = load_dataset(data, image_size=resolved.resolution, **options)
    if images.num_classes != int(dict(spec.options).get("num_classes", images.num_classes)):
        raise SpaceConfigError(
            f"the dataset has {images.num_classes} classes but the space is configured for "
            f"{dict(spec.options)['num_classes']}; add --set num_classes={images.num_classes}"
        )
    return _Target(resolved.build(spec), images, resolved.resolution, f"{spec.space} arch", spec=spec)

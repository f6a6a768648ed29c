"""``edgenas compress domino``: which blocks of a network to graft under a measured latency budget (thesis Ch 5)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas._random import seeded_torch
from edgenas.cli._app import emit_json, out, sub_app
from edgenas.cli._device import command_device, device_runtime
from edgenas.cli._options import (
    MAX_MS,
    DataOpt,
    InputBatchOpt,
    JsonOpt,
    RemoteOpt,
    RepeatsOpt,
    RuntimeOpt,
    SeedOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    choice,
    input_file,
    number,
    run_dir,
)
from edgenas.cli._progress import progress_bar
from edgenas.cli.hardware import timing_protocol
from edgenas.compress.domino_job import DEFAULT_LATENCY_MASKS

#: Test images a proxy pair is measured on when --test-images is 0 (all).
PROXY_TEST_IMAGES = 500

compress_app = sub_app("compress", "Compress a network for a device under a latency budget (Domino, thesis Ch 5).")


def _count(flag: str, text: str, low: int = 1, high: int = 100_000) -> Any:
    return number(flag, help=text, low=low, high=high)


@compress_app.command("domino")
def domino_command(
    model: Annotated[
        str,
        typer.Option(
            "--model", help="torchvision:mobilenet_v2 (or resnet50, ...), a spec file, a train run or a .pt model file."
        ),
    ],
    output: Annotated[Path, run_dir("--output", "-o", help="Run folder (resumable with the same -o).")],
    target_ms: Annotated[
        float | None,
        number(
            "--target-ms",
            help="Latency budget T (ms on the runtime), read at the level of the calibration session (the ungrafted "
            "network's latency then).",
            high=MAX_MS,
            low_open=True,
        ),
    ] = None,
    target_ratio: Annotated[
        float | None,
        number(
            "--target-ratio",
            help="Latency budget T as a share of the ungrafted network's latency (e.g. 0.75), timed beside it.",
            high=1,
            low_open=True,
        ),
    ] = None,
    calibration_masks: Annotated[
        int,
        _count("--calibration-masks", "Spread masks timed beside the ungrafted network before the search.", 0, 1000),
    ] = 4,
    data: DataOpt = None,
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
    input_batch: InputBatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 30,
    resolution: Annotated[
        int | None,
        number("--resolution", help="Input side of a torchvision: model (default: the images' own).", low=8, high=1024),
    ] = None,
    predictor: Annotated[
        Path | None,
        input_file("--predictor", help="A latency predictor of this network's masks (default: measure and fit one)."),
    ] = None,
    latency_masks: Annotated[
        int, _count("--latency-masks", "Masks measured for the latency predictor.", 10)
    ] = DEFAULT_LATENCY_MASKS,
    proxy_masks: Annotated[int, _count("--proxy-masks", "Masks trained on the proxy task (meta-training).")] = 100,
    target_masks: Annotated[int, _count("--target-masks", "Masks trained like the final network (the shots).")] = 10,
    proxy_epochs: Annotated[int, _count("--proxy-epochs", "Epochs of a proxy training (one task per epoch).")] = 3,
    proxy_images: Annotated[int, _count("--proxy-images", "Class-balanced images of a proxy training.", 2)] = 1000,
    proxy_resolution: Annotated[
        int, _count("--proxy-resolution", "Input side of a proxy training (px).", 8, 1024)
    ] = 16,
    epochs: Annotated[int, _count("--epochs", "Epochs of the final training of the grafted network.", 1, 10_000)] = 10,
    images: Annotated[
        int | None,
        _count("--images", "Class-balanced training images of the final training (default: all).", 1, 10_000_000),
    ] = None,
    test_images: Annotated[
        int | None, _count("--test-images", "Class-balanced test images (default: all).", 1, 10_000_000)
    ] = None,
    batch_size: Annotated[int, _count("--batch-size", "Batch size of every training.", 1, 65_536)] = 64,
    lr: Annotated[
        float, number("--lr", help="Peak learning rate of the final training.", high=100, low_open=True)
    ] = 0.05,
    order: Annotated[
        str,
        choice(
            "--order",
            values=("train-first", "reparameterize-first"),
            help="Train the grafted form then collapse (thesis), or collapse then train (ablation).",
        ),
    ] = "train-first",
    aggressive: Annotated[bool, typer.Option("--aggressive", help="Domino-Aggressive: graft every block.")] = False,
    pro_width: Annotated[
        float | None,
        number("--pro-width", help="Domino-Pro: widen grafted blocks by this factor while training.", low=1, high=16),
    ] = None,
    distill: Annotated[
        bool, typer.Option("--distill", help="Distil from the ungrafted model (it must be trained).")
    ] = False,
    close_loop: Annotated[
        int,
        number(
            "--close-loop",
            help="Measurements the landing of the searched mask on T may spend before training (the closed loop, "
            "changing as few blocks as it can; 0 = measure it once).",
            high=10_000,
        ),
    ] = 12,
    tolerance: Annotated[
        float, number("--tolerance", help="T is met at most this share above it.", low=0, high=1, low_open=True)
    ] = 0.02,
    loads: Annotated[int, number("--loads", help="The landing's median over this many loads.", low=1, high=100)] = 3,
    population: Annotated[int, _count("--population", "Candidates per generation.", 2, 10_000)] = 50,
    iterations: Annotated[int, _count("--iterations", "Generations.", 1, 10_000)] = 20,
    top_k: Annotated[int, _count("--top-k", "Candidates kept as parents.", 1, 10_000)] = 10,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Search the grafting mask of MODEL that maximises the meta-predicted accuracy under a predicted latency of T
    (latency predictor: masks measured after collapse; accuracy: MAML over proxy and target pairs), land it on T
    measured (the closed loop), train the grafted network, collapse it, export model.onnx and measure it against the
    ungrafted network. Writes summary.json,
    model.pt (the grafted model file), model.onnx; a killed run resumes with the same -o."""
    from edgenas.compress.domino import PairSchedule
    from edgenas.compress.domino_job import DominoJob, DominoRun, FinalTraining
    from edgenas.errors import DominoError
    from edgenas.evolution import EvolutionConfig
    from edgenas.models import load_model
    from edgenas.predictors import Predictor
    from edgenas.search.landing import LandingPolicy
    from edgenas.train import load_dataset

    runtime = device_runtime(runtime, remote) or runtime
    if (target_ms is None) == (target_ratio is None):
        raise DominoError("give one target: --target-ms or --target-ratio")

    job = DominoJob(
        target_ms=target_ms or 0.0,
        target_ratio=target_ratio or 0.0,
        calibration_masks=calibration_masks,
        latency_masks=latency_masks,
        proxy_masks=proxy_masks,
        target_masks=target_masks,
        proxy=PairSchedule(
            epochs=proxy_epochs,
            images=proxy_images,
            test_images=test_images or PROXY_TEST_IMAGES,
            resolution=proxy_resolution,
            batch_size=batch_size,
            seed=seed,
        ),
        evolution=EvolutionConfig(population=population, iterations=iterations, top_k=top_k, seed=seed),
        final=FinalTraining(
            epochs=epochs, images=images or 0, test_images=test_images or 0, batch_size=batch_size, lr=lr, seed=seed
        ),
        order=order,
        aggressive=aggressive,
        pro_width=pro_width,
        landing=LandingPolicy("close-loop", close_loop, tolerance, loads)
        if close_loop
        else LandingPolicy("measure", 1, tolerance, loads),
    )
    job.check()
    images_data = load_dataset(data, image_size=resolution)
    fresh = model.startswith("torchvision:")
    with seeded_torch(seed):  # a network built here starts from a seeded initialisation
        loaded = load_model(
            model,
            num_classes=images_data.num_classes if fresh else None,
            resolution=(resolution or images_data.image_size) if fresh else None,
        )
    pretrained = not (fresh or model.endswith((".json", ".jsonl")))  # a run or model file holds trained weights
    if distill and not pretrained:
        raise DominoError("--distill needs a trained model to distil from (a train run or model file)")
    teacher = copy.deepcopy(loaded.model) if distill else None
    timing = {"batch": input_batch, "resolution": loaded.resolution, "threads": threads}
    device = command_device(runtime, remote, output / "device", protocol=timing_protocol(warmup, repeats), **timing)
    given = Predictor.load(predictor) if predictor is not None else None
    with _StepProgress(quiet=as_json) as progress:
        run = DominoRun(
            loaded,
            images_data,
            output,
            job,
            device,
            teacher=teacher,
            pretrained=pretrained,
            latency_predictor=given,
            progress=progress,
        )
        summary = run.run()
    if as_json:
        emit_json({k: v for k, v in summary.items() if k != "job"})
        return
    _print(summary, output)


class _StepProgress:
    """One progress bar per step of the run (latency, proxy pairs, target pairs, search, train, deploy)."""

    def __init__(self, quiet: bool) -> None:
        self.progress = progress_bar("[bold]{task.fields[step]}", "{task.fields[note]}", quiet=quiet)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _StepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, step: str, done: int, total: int, message: str) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=max(total, 1), step=step, note="")
        self.progress.update(self.tasks[step], completed=done, total=max(total, 1), note=message[:60])


def _print(summary: dict[str, Any], output: Path) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} ms"

    out.print(
        f"{summary['method']}: mask {summary['mask']} ({summary['grafted_blocks']} of "
        f"{summary['mask_space']['num_layers']} blocks grafted)"
    )
    out.print(
        f"  latency (ms at the calibration's level, ungrafted {ms(summary['ungrafted_ms'])}): target "
        f"{ms(summary['target_ms'])} ({summary['target_ratio']:.3f} of ungrafted), predicted "
        f"{ms(summary.get('predicted_ms'))}, calibrated {ms(summary.get('calibrated_ms'))}, measured "
        f"{ms(summary['measured_ms'])} ({'met' if summary['met'] else 'MISSED'})"
    )
    out.print(
        f"  measured beside the ungrafted network: ratio {summary['ratio']:.3f}, speed-up {summary['speedup']:.2f}x "
        f"(now: {ms(summary['measured_ms_now'])} vs {ms(summary['ungrafted_ms_now'])})"
    )
    if summary.get("landing"):
        searched = summary["searched_mask"]
        moved = f" (the search found {searched})" if searched != summary["mask"] else ""
        out.print(f"  landing before training: {summary['landing']['verdict']}{moved}")
    predicted = summary.get("predicted_top1")
    note = f" (predicted {predicted:.1f}%)" if predicted is not None else ""
    out.print(f"  test top-1: before {summary['top1_before']:.2f}%, after {summary['top1_after']:.2f}%{note}")
    out.print(f"  wrote {summary['onnx']}, {output / 'model.pt'}, {output / 'summary.json'}")

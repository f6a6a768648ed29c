"""``edgenas channels``: channel-level exploration of a found network with BTE (LightNets++, thesis Algorithm 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import app, emit_json, err, out, resolve_one_arch
from edgenas.cli._device import command_device, device_runtime
from edgenas.cli._options import (
    MAX_MS,
    ArchArg,
    BatchSizeOpt,
    DataOpt,
    IndexOpt,
    InputBatchOpt,
    JsonOpt,
    RemoteOpt,
    RepeatsOpt,
    RuntimeOpt,
    SeedOpt,
    SetOpt,
    SpaceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    choice,
    input_file,
    number,
    run_dir,
)
from edgenas.cli._progress import progress_bar
from edgenas.cli.hardware import timing_protocol

#: Channel configurations measured for the predictor when none is given: 240 fitted + 60 held out. On a 2-core CPU
#: (benchmarks/results/channels_uniform.md) held-out Spearman rose 0.79 -> 0.83 -> 0.86 from 100 to 150 to 240 fitted
#: configurations, MAPE 4.7 -> 3.8%.
DEFAULT_PROFILE_N = 300


@app.command("channels")
def channels_command(
    arch: ArchArg,
    target_ms: Annotated[
        float, number("--target-ms", help="Latency constraint T (ms, as predicted).", high=MAX_MS, low_open=True)
    ],
    output: Annotated[Path, run_dir("--output", "-o", help="Run folder (resumable).")],
    predictor: Annotated[
        Path | None,
        input_file("--predictor", help="Latency predictor of this net's channel space (default: profile and fit one)."),
    ] = None,
    profile_n: Annotated[
        int, number("--profile-n", help="Configurations measured to fit the predictor.", low=12, high=100_000)
    ] = DEFAULT_PROFILE_N,
    sampling: Annotated[
        str,
        choice(
            "--sampling",
            values=("cover", "uniform"),
            help="How the profiled configurations are drawn: uniform (thesis), or half spread over the latency range.",
        ),
    ] = "uniform",
    constraint: Annotated[
        str, choice("--constraint", values=("le", "eq"), help="Predicted latency <= T, or within --tolerance of T.")
    ] = "le",
    tolerance: Annotated[
        float, number("--tolerance", help="Relative band of --constraint eq.", low=0, high=1, low_open=True)
    ] = 0.02,
    close_loop: Annotated[
        int,
        number(
            "--close-loop",
            help="Measurements the landing of the found configuration on T may spend (the closed loop, changing as "
            "few scales as it can, within --constraint and --tolerance; 0 = measure it once).",
            high=10_000,
        ),
    ] = 12,
    loads: Annotated[int, number("--loads", help="The landing's median over this many loads.", low=1, high=100)] = 3,
    proxy: Annotated[str, typer.Option("--proxy", help="Fitness: bte, tse, tse-e or jacobian.")] = "bte",
    epochs: Annotated[int, number("--epochs", help="Epochs of each probe (BTE: E).", low=1, high=100)] = 3,
    images: Annotated[
        int, number("--images", help="Class-balanced training images probed on.", low=2, high=1_000_000)
    ] = 2_560,
    batch_size: BatchSizeOpt = 64,
    population: Annotated[int, number("--population", help="Candidates per generation.", low=2, high=10_000)] = 20,
    iterations: Annotated[int, number("--iterations", help="Generations.", low=1, high=10_000)] = 20,
    top_k: Annotated[int, number("--top-k", help="Candidates kept as parents.", low=1, high=10_000)] = 10,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
    input_batch: InputBatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 10,
    repeats: RepeatsOpt = 30,
    space: SpaceOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Search per-layer channel scales (0.5..2.0 of each layer's hidden channels) of ARCH that maximise BTE under a
    predicted latency of T (thesis Algorithm 2: population 20, 20 generations, top 10, rates 0.5, BTE after 3 epochs),
    then land the found configuration on T measured on RUNTIME (the closed loop) and measure it beside the unmodified
    network. Writes arch.json (trainable with `edgenas train`), summary.json, channels.png; a killed search resumes
    with the same -o."""
    from edgenas.compress.channels import ChannelSearchConfig
    from edgenas.evolution import EvolutionConfig
    from edgenas.hardware.reference import anchor_from_level
    from edgenas.predictors import Predictor
    from edgenas.search.landing import LandingPolicy
    from edgenas.spaces.channels import channel_space
    from edgenas.train import load_dataset

    base = resolve_one_arch(arch, space, set_, index)
    config = ChannelSearchConfig(
        target_ms=target_ms,
        constraint=constraint,
        tolerance=tolerance,
        proxy=proxy,
        epochs=epochs,
        images=images,
        batch_size=batch_size,
        evolution=EvolutionConfig(population=population, iterations=iterations, top_k=top_k, seed=seed),
    )
    config.check()
    timing = {"batch": input_batch, "threads": threads, "protocol": timing_protocol(warmup, repeats)}
    device = command_device(device_runtime(runtime, remote) or runtime, remote, output / "device", **timing)
    images_data = load_dataset(data, image_size=channel_space(base).resolution)
    given = Predictor.load(predictor) if predictor is not None else None  # a bad file is refused before any write
    output.mkdir(parents=True, exist_ok=True)
    if given is None:
        fitted = _fit(channel_space(base), device, output, profile_n, seed, sampling, quiet=as_json)
    else:
        fitted = given
    landing = LandingPolicy("close-loop", close_loop, tolerance, loads) if close_loop else LandingPolicy("measure")
    # the loop reads configurations at the level the predictor was fitted at (its profile's reference: issue 30)
    device = device.with_anchor(anchor_from_level(fitted.meta.level, channel_space(base)))
    summary = _search(base, fitted, images_data, output, config, (device, landing), quiet=as_json)
    if as_json:
        emit_json(summary)
        return
    _print(summary, output)


def _fit(space: Any, device: Any, output: Path, n: int, seed: int, sampling: str, *, quiet: bool) -> Any:
    from edgenas.compress.channels import fit_channel_predictor

    progress = progress_bar("[bold]profiling channel configurations", quiet=quiet)
    with progress:
        task = progress.add_task("profile", total=n)
        predictor = fit_channel_predictor(
            space,
            device,
            output / "store.sqlite",
            n,
            sampling=sampling,
            seed=seed,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    predictor.save(output / "predictor.pt")
    test = predictor.meta.scores["test"]
    if not quiet:
        err.print(
            f"channel predictor: Spearman {test['spearman']:.3f}, MAPE {test['mape']:.1f}% on {test['n']} held out"
        )
    return predictor


def _search(
    base: Any, predictor: Any, data: Any, output: Path, config: Any, landed_by: tuple[Any, Any], *, quiet: bool
) -> dict[str, Any]:
    """The channel search, ``landed_by`` (device, landing policy)."""
    from edgenas.compress.channels import channel_search

    device, landing = landed_by
    progress = progress_bar("[bold]channel search", "best {task.fields[best]}", quiet=quiet)
    with progress:
        task = progress.add_task("evolve", total=config.evolution.iterations, best="-")
        return channel_search(
            base,
            predictor,
            data,
            output,
            config,
            device=device,
            landing=landing,
            on_generation=lambda done, best: progress.update(task, completed=done, best=f"{best.fitness:.4g}"),
        )


def _print(summary: dict[str, Any], output: Path) -> None:
    found, base = summary["found"], summary["unmodified"]

    def line(name: str, r: dict[str, Any]) -> str:
        measured = f"{r['measured_ms']:.3f} ms measured" if r["measured_ms"] is not None else "not measured"
        return f"  {name:<11} fitness {r['fitness']:.4g}, {r['predicted_ms']:.3f} ms predicted, {measured}"

    out.print(
        f"target {summary['target_ms']:g} ms ({summary['constraint']}); {summary['candidates']} candidates scored"
    )
    out.print(line("unmodified", base))
    out.print(line("found", found))
    out.print(f"  scales {found['channels']}")
    if summary.get("landing"):
        searched = summary.get("searched")
        moved = f" (the search found {searched['channels']})" if searched else ""
        out.print(f"landing: {summary['landing']['verdict']}{moved}")
    out.print(f"wrote {output / 'arch.json'}, {output / 'summary.json'}, {output / 'channels.png'}")

"""``edgenas bench proxies``: how well the LightNets++ proxies rank NAS-Bench-201 cells (thesis Fig 4.6/4.7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from edgenas._io import write_bytes_atomic, write_text_atomic
from edgenas.cli._app import emit_json, out
from edgenas.cli._options import MAX_CELLS_PER_STAGE, BatchSizeOpt, DataOpt, JsonOpt, SeedOpt, number, run_dir
from edgenas.cli._progress import progress_bar
from edgenas.cli.bench import BenchDirOpt, bench_app


@bench_app.command("proxies")
def bench_proxies(
    output: Annotated[Path, run_dir("--output", "-o", help="Folder for traces.jsonl, results.json/.md, ranks.png.")],
    n_archs: Annotated[int, number("--n-archs", help="NAS-Bench-201 cells sampled.", low=2, high=15_625)] = 40,
    epochs: Annotated[int, number("--epochs", help="Epochs of each probe (budgets 1..E).", low=2, high=100)] = 3,
    images: Annotated[
        int, number("--images", help="Class-balanced CIFAR-10 training images probed on.", low=2, high=50_000)
    ] = 2_560,
    batch_size: BatchSizeOpt = 64,
    cells_per_stage: Annotated[
        int,
        number(
            "--cells-per-stage",
            help="Cells per stage of the probed network (the tables': 5); ranks are always against the tables.",
            low=1,
            high=MAX_CELLS_PER_STAGE,
        ),
    ] = 5,
    channels: Annotated[
        int, number("--channels", help="Channels C of the probed network (tables: 16).", low=1, high=1024)
    ] = 16,
    bootstrap: Annotated[int, number("--bootstrap", help="Bootstrap resamples of each interval.", high=100_000)] = 1000,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    bench_dir: BenchDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank quality of BTE, TSE, TSE-E and the Jacobian score on NAS-Bench-201 (thesis Fig 4.6/4.7): probe N cells
    for E epochs on a CIFAR-10 subset and report Kendall tau and Spearman against the true accuracies, with
    bootstrap intervals. Resumable: a rerun with the same -o probes only the cells it has not."""
    from edgenas.bench import load_nb201
    from edgenas.bench.proxies import StudyNetwork, rank_markdown, run_rank_study
    from edgenas.report.figures import proxy_ranks
    from edgenas.train import load_dataset

    table = load_nb201(bench_dir)
    images_data = load_dataset(data, image_size=32)
    network = StudyNetwork(channels=channels, cells_per_stage=cells_per_stage, seed=seed)
    progress = progress_bar("[bold]probing cells", "{task.fields[last]}", quiet=as_json)
    with progress:
        task = progress.add_task("probe", total=n_archs, last="")
        result = run_rank_study(
            table,
            images_data,
            output,
            n_archs=n_archs,
            epochs=epochs,
            images=images,
            batch_size=batch_size,
            network=network,
            bootstrap=bootstrap,
            on_probe=lambda arch: progress.update(task, advance=1, last=arch[:40]),
        )
    write_text_atomic(output / "results.json", json.dumps(result, indent=2) + "\n")
    markdown = "".join(
        f"\nKendall tau vs {t} test accuracy:\n\n" + rank_markdown(result["rows"], t) for t in ("200ep", "12ep")
    )
    write_text_atomic(output / "results.md", markdown)
    write_bytes_atomic(output / "ranks.png", proxy_ranks(result["rows"], "200ep"))
    if as_json:
        emit_json(result)
        return
    out.print(markdown + f"\n{output / 'results.json'}, {output / 'ranks.png'}")

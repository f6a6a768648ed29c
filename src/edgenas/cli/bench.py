"""``edgenas bench lookup|oracle|nb201``: NAS-Bench-201 and HW-NAS-Bench as the referee of searches (``bench proxies``:
:mod:`edgenas.cli.bench_proxies`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas._io import write_text_atomic
from edgenas.cli._app import emit_json, err, out, sub_app
from edgenas.cli._options import (
    MAX_CELLS_PER_STAGE,
    MAX_EPOCHS,
    MAX_MS,
    BatchSizeOpt,
    BudgetTermOpt,
    DataOpt,
    DerivationOpt,
    FairWarmupOpt,
    JsonOpt,
    ToleranceOpt,
    choice,
    input_file,
    number,
    run_dir,
)

bench_app = sub_app("bench", "NAS-Bench-201 as the referee: true accuracy and device latency of cells, the oracle.")

BenchDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--bench-dir",
        help="Folder with nb201/ and hwnasbench/ tables (default: $EDGENAS_DATA).",
        exists=True,
        file_okay=False,
    ),
]
CellArg = Annotated[str, typer.Argument(help="A NAS-Bench-201 cell: its index (0..15624) or its cell string.")]
LatencyColumnOpt = Annotated[
    str, typer.Option("--latency-column", help="HW-NAS-Bench device: edgegpu, raspi4, or a full column name.")
]


@bench_app.command("lookup")
def bench_lookup(cell: CellArg, bench_dir: BenchDirOpt = None, as_json: JsonOpt = False) -> None:
    """The true 200-epoch CIFAR-10 accuracy and the measured device latencies of one cell."""
    from edgenas.bench import load_nb201

    found = load_nb201(bench_dir).lookup(cell)
    if as_json:
        emit_json(found)
        return
    latency = ", ".join(f"{k} {v:.4g} ms" for k, v in found["latency_ms"].items()) or "no HW-NAS-Bench table"
    out.print(
        f"#{found['index']} {found['arch']}\n  CIFAR-10 test {found['test_acc']:.2f}%, valid {found['valid_acc']:.2f}% "
        f"(200 epochs); {latency}"
    )


@bench_app.command("oracle")
def bench_oracle(
    latency_column: LatencyColumnOpt,
    target_ms: Annotated[float, number("--target-ms", help="Latency target T (ms).", high=MAX_MS, low_open=True)],
    tolerance: ToleranceOpt = 0.02,
    constraint: Annotated[
        str, choice("--constraint", values=("eq", "le"), help="Within the tolerance of T (eq), or also at most T (le).")
    ] = "eq",
    judge_cell: Annotated[
        str | None, typer.Option("--judge", help="Also judge this cell (index or string): regret, rank, budget met.")
    ] = None,
    bench_dir: BenchDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The best true test accuracy among the cells whose true latency meets T, and the mean of those cells."""
    from edgenas.bench import judge, load_nb201, oracle

    table = load_nb201(bench_dir)
    best = oracle(table, latency_column, target_ms, tolerance=tolerance, constraint=constraint)
    verdict = judge(table, judge_cell, best) if judge_cell is not None else None
    if as_json:
        emit_json({"oracle": best.as_dict(), "judged": verdict})
        return
    out.print(
        f"{best.cells} cells have a true {best.column} within ±{tolerance:.1%} of {target_ms:g} ms ({constraint}): "
        f"mean test accuracy {best.mean_test_acc:.2f}%; the oracle is #{best.index} {table.arch[best.index]} with "
        f"{best.test_acc:.2f}% at {best.latency_ms:.4g} ms"
    )
    if verdict is not None:
        out.print(
            f"#{verdict['index']}: test {verdict['test_acc']:.2f}%, regret {verdict['regret']:.2f} points; true "
            f"latency {verdict['true_latency_ms']:.4g} ms ({100 * verdict['latency_error']:+.1f}%, "
            f"{'meets' if verdict['meets_budget'] else 'misses'} the budget); rank {verdict['rank']} of "
            f"{verdict['peers']} cells of its latency"
        )


AlphaBudgetOpt = Annotated[
    str,
    choice(
        "--alpha-budget",
        values=("darts", "gdas"),
        help="Default alpha lr: keep the steps x lr of DARTS' 50 protocol epochs or GDAS' 250.",
    ),
]


def _seed_line(record: dict[str, Any]) -> str:
    """One seed's verdict for the terminal: its cell, true accuracy and, with a target, true latency and regret."""
    extra = (
        f", true latency {record['true_latency_ms']:.4g} ms ({100 * record['latency_error']:+.1f}%), regret "
        f"{record['regret']:.2f}"
        if "regret" in record
        else ""
    )
    cell = f"seed {record['seed']}: cell #{record['index']} test {record['test_acc']:.2f}%"
    return f"{cell}{extra} ({record['search_s']:.0f} s)"


@bench_app.command("nb201")
def bench_nb201(
    strategy: Annotated[str, typer.Option("--strategy", help="Search strategy: lightnas, gdas, darts, fbnet, random.")],
    output: Annotated[Path, run_dir("--output", "-o", help="Folder for the runs (seed0/, ...) and results.")],
    seeds: Annotated[int, number("--seeds", help="Searches with seeds 0..N-1.", low=1, high=100)] = 3,
    data: DataOpt = None,
    bench_dir: BenchDirOpt = None,
    predictor: Annotated[
        Path | None, input_file("--predictor", help="Latency predictor (.pt) of the nb201 space, for --target-ms.")
    ] = None,
    target_ms: Annotated[
        float | None, number("--target-ms", help="Latency target T (ms).", high=MAX_MS, low_open=True)
    ] = None,
    latency_column: Annotated[
        str | None, typer.Option("--latency-column", help="HW-NAS-Bench column judging the latency (edgegpu, raspi4).")
    ] = None,
    tolerance: ToleranceOpt = 0.02,
    constraint: Annotated[
        str, choice("--constraint", values=("eq", "le"), help="Within the tolerance of T (eq), or also at most T (le).")
    ] = "eq",
    subset: Annotated[
        int, number("--subset", help="Class-balanced training images (half w, half alpha).", low=2, high=50_000)
    ] = 5_000,
    epochs: Annotated[
        int, number("--epochs", help="Search epochs (protocol: 50; random: per network).", low=1, high=MAX_EPOCHS)
    ] = 6,
    warmup_epochs: Annotated[int, number("--warmup-epochs", help="Weights-only epochs first.", high=MAX_EPOCHS)] = 0,
    batch_size: BatchSizeOpt = 64,
    cells_per_stage: Annotated[
        int,
        number(
            "--cells-per-stage",
            help="Cells per stage of the searched network (protocol: 5; 1 learns faster on a CPU); the found cell "
            "is judged in the tables' 5-cell network.",
            low=1,
            high=MAX_CELLS_PER_STAGE,
        ),
    ] = 1,
    alpha_lr: Annotated[
        float | None,
        number("--alpha-lr", help="Adam lr of alpha (default: the protocol's steps x lr).", high=10, low_open=True),
    ] = None,
    alternate: Annotated[
        str | None,
        choice(
            "--alternate",
            values=("batch", "epoch"),
            help="Alternate alpha and w steps per batch (DARTS, the default) or per epoch.",
        ),
    ] = None,
    alpha_budget: AlphaBudgetOpt = "darts",
    alpha_lr_schedule: Annotated[
        str | None,
        choice(
            "--alpha-lr-schedule",
            values=("cosine", "constant"),
            help="alpha's lr: constant (the default here, NAS-Bench-201's and NNI's) or a cosine decay to 0.",
        ),
    ] = None,
    w_lr_schedule: Annotated[
        str | None,
        choice(
            "--w-lr-schedule",
            values=("cosine", "constant"),
            help="The weights' lr: constant (the default here, NNI's) or a cosine decay to 0.",
        ),
    ] = None,
    fair_warmup: FairWarmupOpt = False,
    derivation: DerivationOpt = None,
    no_accuracy: Annotated[bool, typer.Option("--no-accuracy", help="Drop CE from the alpha loss.")] = False,
    budget_term: BudgetTermOpt = "loss",
    land: Annotated[
        int,
        number(
            "--land",
            help="Land the found cell on T by the closed loop first, the tables standing for the device: at most N "
            "measurements (0 = judge the found cell as it is).",
            low=0,
            high=1000,
        ),
    ] = 0,
    lambda_p: Annotated[
        float | None, number("--lambda-p", help="Proportional gain of lambda (default: the engine's).", high=1e9)
    ] = None,
    time_budget: Annotated[
        float,
        number("--time-budget", help="random: wall-clock seconds per seed (0 = none; random needs one).", high=1e7),
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Search the NAS-Bench-201 space on CIFAR-10 (protocol shrunk to a CPU budget) and judge the cells it finds by
    the tables: true test accuracy, and with a target the true latency, the oracle, the regret and the rank."""
    from edgenas.bench import load_nb201
    from edgenas.bench.referee import (
        MARKDOWN_HEADER,
        Budget,
        Budgeted,
        aggregate,
        markdown_row,
        protocol_alpha_lr,
        search_and_judge,
    )
    from edgenas.errors import BenchError
    from edgenas.search import get_strategy
    from edgenas.train import load_dataset

    get_strategy(strategy)  # refuses an unknown strategy before anything is loaded
    if (predictor is None) != (target_ms is None) or (target_ms is not None) != (latency_column is not None):
        raise BenchError("a latency budget needs all three: --predictor P.pt, --target-ms T and --latency-column C")
    if (land or budget_term == "landing") and target_ms is None:
        raise BenchError("--land and --budget-term landing need a latency target (--target-ms)")
    if budget_term == "landing" and not land:
        raise BenchError("--budget-term landing searches alpha for accuracy alone: give --land N to meet T")
    table = load_nb201(bench_dir)
    latency = None
    if target_ms is not None:
        from edgenas.predictors import Predictor
        from edgenas.search.engine import Target

        table.column(latency_column)  # refuse an unknown column before searching
        latency = Budgeted(Target(Predictor.load(predictor), target_ms), latency_column, tolerance, constraint)
    budget = Budget(
        subset=subset,
        epochs=epochs,
        warmup_epochs=warmup_epochs,
        batch_size=batch_size,
        cells_per_stage=cells_per_stage,
    )
    images = load_dataset(data, image_size=32)
    records = []
    for seed in range(seeds):
        record = search_and_judge(
            table,
            strategy,
            seed,
            images,
            budget,
            output / f"seed{seed}",
            latency=latency,
            land=land,
            options={"alpha_lr": alpha_lr, "alpha_budget": alpha_budget, "accuracy": not no_accuracy}
            | {"time_budget_s": time_budget, "fair_warmup": fair_warmup, "budget_term": budget_term}
            | ({"lambda_p": lambda_p} if lambda_p is not None else {})
            | ({"alternate": alternate} if alternate is not None else {})
            | ({"alpha_lr_schedule": alpha_lr_schedule} if alpha_lr_schedule else {})
            | ({"w_lr_schedule": w_lr_schedule} if w_lr_schedule else {})
            | ({"derivation": derivation} if derivation else {}),
        )
        records.append(record)
        if not as_json:
            err.print(_seed_line(record))
    summary = aggregate(records)
    label = (
        f"{strategy}"
        + (f" @ {target_ms:g} ms {latency_column}" if latency else "")
        + (" (no CE)" if no_accuracy else "")
        + (", target in the landing only" if budget_term == "landing" else "")
        + (f", landed ({land} measurements)" if land else "")
    )
    payload = {
        "strategy": strategy,
        "budget": budget.__dict__ | {"alpha_lr": alpha_lr or protocol_alpha_lr(budget, alpha_budget)},
        "latency": None
        if latency is None
        else {"column": table.column(latency_column), "target_ms": target_ms, "tolerance": tolerance},
        "oracle": records[0].get("oracle"),
        "records": records,
        "summary": summary,
    }
    write_text_atomic(output / "results.json", json.dumps(payload, indent=2, sort_keys=True) + "\n")
    write_text_atomic(output / "results.md", MARKDOWN_HEADER + "\n" + markdown_row(label, summary) + "\n")
    if as_json:
        emit_json(payload)
        return
    out.print(MARKDOWN_HEADER)
    out.print(markdown_row(label, summary))

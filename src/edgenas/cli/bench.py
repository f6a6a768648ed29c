"""``edgenas bench lookup|oracle``: NAS-Bench-201 and HW-NAS-Bench as the referee of a found cell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgenas.cli._app import emit_json, out, sub_app
from edgenas.cli._options import MAX_MS, JsonOpt, ToleranceOpt, choice, number

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

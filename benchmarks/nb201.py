"""NAS-Bench-201 as the referee: the true accuracy (and latency) of the cells each search strategy finds.

Usage:
    python benchmarks/nb201.py unconstrained --data DIR [--strategies gdas,lightnas,darts] [--seeds 3]
        [--subset 5000] [--epochs 6]
    python benchmarks/nb201.py unconstrained --data DIR --strategies random --time-budget S --epochs 1
    python benchmarks/nb201.py budget --data DIR --column edgegpu --targets 4,5,6 [--strategies lightnas]
        [--seeds 1] [--no-accuracy] [--land 12] [--budget-term landing --land 12] [--alpha-lr LR]
    common: [--cells-per-stage 1] (of the searched network; 5 = the protocol's) [--warmup-epochs 0]
        [--alternate batch|epoch] (default: batch) [--fair-warmup] [--alpha-lr-schedule cosine|constant]
        [--alpha-budget darts|gdas];
        benchmarks/nb201_figures.sh runs every committed figure
    python benchmarks/nb201.py render   # results/nb201.md again from results/nb201.json, with the paired comparisons

``unconstrained``: each strategy searches for accuracy only (no latency term); the found cells' true 200-epoch
CIFAR-10 test accuracy, mean ± std over seeds, next to the mean of all 15,625 cells. ``budget``: LightNAS-style
searches with a latency target on a HW-NAS-Bench column, with a predictor fitted on 1,000 cells of that column (the
table's own values: a stand-in for profiling the device); true latency vs target, regret to the oracle, and the mean
accuracy of the cells of that latency. Every search runs through ``edgenas bench nb201`` in-process (resumable: a
finished seed is judged again, not searched). Results: ``benchmarks/results/nb201.{json,md}`` (phases merge).
DIR is the data folder with cifar10.npz, nb201/ and hwnasbench/ (``$EDGENAS_DATA``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, machine, paired_difference, write_results

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-nb201"


def run_cli(argv: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "edgenas", *argv, "--json"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"edgenas {' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return json.loads(proc.stdout)


def budget_args(args: argparse.Namespace) -> list[str]:
    extra = ["--time-budget", str(args.time_budget)] if args.time_budget else []
    extra += ["--cells-per-stage", str(args.cells_per_stage), "--warmup-epochs", str(args.warmup_epochs)]
    extra += ["--alternate", args.alternate] if args.alternate else []
    return ["--subset", str(args.subset), "--epochs", str(args.epochs), "--seeds", str(args.seeds), *extra]


def budget_tag(args: argparse.Namespace) -> str:
    """The run folder's suffix: every budget option that differs between comparisons."""
    tag = f"s{args.subset}-e{args.epochs}"
    tag += f"-w{args.warmup_epochs}"  # (runs before the NNI-parity loop: warm-up 1 and no -w suffix)
    tag += f"-{args.alternate}" if args.alternate else ""
    return tag + (f"-n{args.cells_per_stage}" if args.cells_per_stage != 5 else "")  # (older runs: 5, no suffix)


def method_options(args: argparse.Namespace) -> tuple[list[str], str, str]:
    """The method options beyond the protocol: their CLI flags, run-folder suffix and label suffix."""
    flags, tag, label = [], "", ""
    if args.fair_warmup:
        flags, tag, label = ["--fair-warmup"], "-fair", ", fair warm-up"
    if args.alpha_budget != "darts":
        flags += ["--alpha-budget", args.alpha_budget]
        tag, label = f"{tag}-a{args.alpha_budget}", f"{label}, {args.alpha_budget.upper()}' alpha budget"
    if args.alpha_lr is not None:
        flags += ["--alpha-lr", str(args.alpha_lr)]
        tag, label = f"{tag}-lr{args.alpha_lr:g}", f"{label}, alpha lr {args.alpha_lr:g}"
    if args.alpha_lr_schedule is not None:
        flags += ["--alpha-lr-schedule", args.alpha_lr_schedule]
        tag, label = f"{tag}-a{args.alpha_lr_schedule}", f"{label}, alpha lr {args.alpha_lr_schedule}"
    return flags, tag, label


def unconstrained(args: argparse.Namespace) -> list[dict]:
    rows = []
    for strategy in args.strategies.split(","):
        flags, tag, suffix = method_options(args)
        out = RUNS / f"free-{strategy}{tag}-{budget_tag(args)}"
        argv = ["bench", "nb201", "--strategy", strategy, "--data", str(args.data), "--bench-dir", str(args.data)]
        argv += [*budget_args(args), *flags]
        payload = run_cli([*argv, "-o", str(out)])
        label = f"{strategy} (accuracy only)" + (f", {args.time_budget:g} s" if args.time_budget else "") + suffix
        rows.append({"label": label, **payload})
        print(f"{strategy}: {payload['summary']['test_acc']}", flush=True)
    return rows


def fit_column_predictor(data: Path, column: str) -> Path:
    path = RUNS / f"predictor-{column}-1000.pt"
    if not path.is_file():
        full = {"edgegpu": "cifar10_edgegpu_latency_ms", "raspi4": "cifar10_raspi4_latency_ms"}[column]
        table = data / "hwnasbench" / "hwnasbench_nb201_cifar10.csv"
        argv = ["predictor", "fit", "--table", str(table), "--space", "nb201", "--arch-column", "arch_str"]
        run_cli([*argv, "--value-column", full, "--kind", "mlp", "--train-size", "1000", "-o", str(path)])
    return path


def budget(args: argparse.Namespace) -> list[dict]:
    predictor = fit_column_predictor(args.data, args.column)
    rows = []
    for strategy in args.strategies.split(","):
        for target in (float(t) for t in args.targets.split(",")):
            flags, method_tag, suffix = method_options(args)
            tag = f"{strategy}{method_tag}-{args.column}-{target:g}ms" + ("-noce" if args.no_accuracy else "")
            if args.budget_term == "landing":  # alpha does not depend on T: one search per seed serves every target
                tag = f"{strategy}{method_tag}-accfirst" + ("-noce" if args.no_accuracy else "")
            extra = (["--no-accuracy"] if args.no_accuracy else []) + flags
            extra += ["--budget-term", args.budget_term, "--land", str(args.land)]
            if args.lambda_p is not None:
                extra += ["--lambda-p", str(args.lambda_p)]
                tag += f"-kp{args.lambda_p:g}"
            argv = ["bench", "nb201", "--strategy", strategy, "--data", str(args.data), "--bench-dir", str(args.data)]
            argv += budget_args(args)
            argv += ["--predictor", str(predictor), "--target-ms", str(target), "--latency-column", args.column]
            payload = run_cli([*argv, *extra, "-o", str(RUNS / f"{tag}-{budget_tag(args)}")])
            label = f"{strategy} @ {target:g} ms {args.column}" + (" (no CE)" if args.no_accuracy else "")
            label += ", target in the landing only" if args.budget_term == "landing" else ""
            label += f", landed by the loop ({args.land})" if args.land else ""
            if args.lambda_p is not None:
                label += f", kp {args.lambda_p:g}"
            label += suffix
            rows.append({"label": label, **payload})
            print(label, payload["summary"].get("regret"), payload["summary"].get("latency_error"), flush=True)
    return rows


def _row_key(row: dict) -> tuple[str, float]:
    return row["label"], row["budget"]["alpha_lr"]


def _row_label(row: dict, with_alpha_lr: bool) -> str:
    return row["label"] + (f", alpha lr {row['budget']['alpha_lr']:.3g}" if with_alpha_lr else "")


#: What a landed row's label says beyond its strategy, target and budget (``budget``'s labels).
NO_CE, LANDING_ONLY, LANDED = " (no CE)", ", target in the landing only", r", landed by the loop \(\d+\)"
#: The paired comparisons of landed rows: (name, (no CE, landing only) of a, of b).
LANDED_COMPARISONS = (
    ("target in the landing only − in the loss", (False, True), (False, False)),
    ("CE − no CE, target in the landing only", (False, True), (True, True)),
    ("CE − no CE, target in the loss", (False, False), (True, False)),
)


def _landed_variant(phase: str, label: str) -> tuple | None:
    """(group, (no CE, landing only), (column, target)) of a landed row; None for a row judged as searched. A group
    is one budget and one strategy with the same other options, over every column and target."""
    landed = re.search(LANDED, label)
    if landed is None:
        return None
    core = label.replace(landed.group(0), "")
    variant = (NO_CE in core, LANDING_ONLY in core)
    core = core.replace(NO_CE, "").replace(LANDING_ONLY, "")
    strategy, target, column, rest = re.match(r"(\S+) @ ([\d.]+) ms ([^\s,]+)(.*)", core).groups()
    return (phase.split(" ", 2)[2], strategy, rest), variant, (column, float(target))


def landed_comparisons(payload: dict) -> list[dict]:
    """Paired differences of test accuracy between landed variants of the same searches (pairs: column, target,
    seed), pooled over every target of a budget."""
    groups: dict = {}
    for phase, rows in payload["phases"].items():
        for row in rows:
            found = _landed_variant(phase, row["label"])
            if found is not None:
                group, variant, target = found
                for record in row["records"]:
                    groups.setdefault(group, {}).setdefault(variant, {})[(*target, record["seed"])] = record["test_acc"]
    out = []
    for (budget, strategy, rest), variants in groups.items():
        for name, a, b in LANDED_COMPARISONS:
            pairs = sorted(set(variants.get(a, {})) & set(variants.get(b, {})))
            if pairs:
                first, second = [variants[a][k] for k in pairs], [variants[b][k] for k in pairs]
                out.append(
                    {
                        "budget": budget,
                        "search": strategy + rest,
                        "comparison": name,
                        "pairs": len(pairs),
                        **paired_difference(first, second),
                    }
                )
    return out


def markdown(payload: dict) -> str:
    from edgenas.bench.referee import MARKDOWN_HEADER, markdown_row

    m = payload["machine"]
    lines = [
        "# NAS-Bench-201 as the referee",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, commit {m['git_commit']}, {m['date']}.",
        "Accuracies are the tables' true 200-epoch CIFAR-10 test accuracy of the found cell (NAS-Bench-201), latencies",
        "the tables' true HW-NAS-Bench latency; searches shrink the NAS-Bench-201 protocol to a CPU budget (the",
        "`budget` line of each phase). Mean ± std over the seeds run.",
    ]
    for phase, rows in payload["phases"].items():
        b = rows[0]["budget"]
        alpha_lrs = {r["budget"]["alpha_lr"] for r in rows}  # differ with --alpha-budget gdas or --alpha-lr
        lines += [
            "",
            f"## {phase}",
            "",
            f"Budget: {b['subset']} class-balanced training images (half w, half alpha), {b['epochs']} epochs "
            f"({b['warmup_epochs']} weights-only), batch {b['batch_size']}, alpha lr "
            f"{' / '.join(f'{lr:.3g}' for lr in sorted(alpha_lrs))} (each row's, when they differ); the searched "
            f"network has {b.get('cells_per_stage', 5)} cell(s) per stage (the tables': 5).",
            "",
            MARKDOWN_HEADER,
            *(markdown_row(_row_label(r, len(alpha_lrs) > 1), r["summary"]) for r in rows),
        ]
        oracles = {
            (o["column"], o["target_ms"], o["tolerance"], o["constraint"]): o for r in rows if (o := r.get("oracle"))
        }
        lines.append("")
        for o in sorted(oracles.values(), key=lambda o: o["target_ms"]):
            lines.append(
                f"- T = {o['target_ms']:g} ms ({o['constraint']}): oracle #{o['index']} {o['test_acc']:.2f}% at "
                f"{o['latency_ms']:.4g} ms; the {o['cells']} cells within ±{100 * o['tolerance']:g}% of T average "
                f"{o['mean_test_acc']:.2f}% (a random cell of that latency)"
            )
    comparisons = landed_comparisons(payload)
    if comparisons:
        lines += [
            "",
            "## landed rows compared (paired by column, target and seed; 95% bootstrap interval)",
            "",
            "| budget | search | comparison | pairs | Δ test acc. (points) [95% CI] | resolved |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['budget']} | {c['search']} | {c['comparison']} | {c['pairs']} | {c['mean']:+.2f} "
            f"[{c['low']:+.2f}, {c['high']:+.2f}] | {'yes' if c['resolved'] else 'no'} |"
            for c in comparisons
        ]
    lines += ["", f"All 15,625 cells average {payload['all_cells_mean_test_acc']:.2f}% test accuracy."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["unconstrained", "budget", "render"])
    parser.add_argument("--data", type=Path, default=None, help="required to search")
    parser.add_argument("--strategies", default="gdas,lightnas,darts")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--alternate", choices=["batch", "epoch"], default=None, help="default: batch")
    parser.add_argument("--cells-per-stage", type=int, default=1, help="of the searched network (protocol: 5)")
    parser.add_argument("--column", default="edgegpu")
    parser.add_argument("--targets", default="4,5,6")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--lambda-p", type=float, default=None)
    parser.add_argument("--fair-warmup", action="store_true", help="warm-up steps train every op once")
    parser.add_argument("--alpha-lr-schedule", choices=["cosine", "constant"], default=None, help="default: constant")
    parser.add_argument("--alpha-budget", choices=["darts", "gdas"], default="darts", help="steps x lr alpha keeps")
    parser.add_argument("--alpha-lr", type=float, default=None, help="alpha's Adam lr (default: --alpha-budget's)")
    parser.add_argument("--budget-term", choices=["loss", "landing"], default="loss", help="where the target acts")
    parser.add_argument("--land", type=int, default=0, help="closed-loop measurements on the tables (0: none)")
    parser.add_argument("--time-budget", type=float, default=0.0, help="random: seconds per seed (equal wall-clock)")
    args = parser.parse_args()
    if args.phase == "render":
        rerender()
        return
    if args.data is None:
        raise SystemExit("--data DIR is required to search")
    RUNS.mkdir(parents=True, exist_ok=True)

    from edgenas.bench import load_nb201

    rows = unconstrained(args) if args.phase == "unconstrained" else budget(args)
    previous = RESULTS / "nb201.json"  # read after the searches: another run may have written meanwhile
    payload = json.loads(previous.read_text()) if previous.is_file() else {"phases": {}}
    key = (
        f"{args.phase} {budget_tag(args)}"
        if args.phase == "unconstrained"
        else f"budget {args.column} {budget_tag(args)}"
    )
    replaced = {_row_key(x) for x in rows}  # a rerun replaces its row; a row of another alpha lr stays beside it
    payload["phases"][key] = [r for r in payload["phases"].get(key, []) if _row_key(r) not in replaced]
    payload["phases"][key] += rows
    payload["machine"] = machine()
    payload["all_cells_mean_test_acc"] = float(load_nb201(args.data).test_acc.mean())
    paths = write_results("nb201", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


def rerender() -> None:
    """Write ``results/nb201.md`` again from ``results/nb201.json`` (no search)."""
    payload = json.loads((RESULTS / "nb201.json").read_text())
    (RESULTS / "nb201.md").write_text(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()

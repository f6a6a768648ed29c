"""One NAS-Bench-201 search with any SearchConfig fields overridden, judged by the tables: the one-off probes the
docs/referee.md quotes beside the committed tables (they are not rows of ``benchmarks/results/nb201.md``).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/probe_nb201.py --data DIR TAG STRATEGY SEED SUBSET EPOCHS [KEY=VALUE ...]
e.g. ``K lightnas 1 20000 8 fair_warmup=True alpha_lr=0.027`` or
``N darts 2 5000 8 warmup_epochs=0 alternate=batch alpha_lr_schedule=constant w_lr_schedule=constant``.
``warmup_epochs`` (default 1), ``alpha_lr`` (default DARTS' protocol budget) and ``cells`` (cells per stage of the
searched network, default 1) set the budget; every other KEY is a SearchConfig field (values as Python literals).
A finished probe (``runs/probe/TAG-STRATEGY-sSEED``) is judged again without searching. Prints one JSON line and
appends it to ``runs/probe/results.jsonl``.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

RUNS = Path(__file__).resolve().parents[1] / "runs" / "probe"


def literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("tag")
    parser.add_argument("strategy")
    parser.add_argument("seed", type=int)
    parser.add_argument("subset", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    from edgenas.bench import load_nb201
    from edgenas.bench.referee import Budget, search_config
    from edgenas.search import get_strategy
    from edgenas.search.engine import same_config
    from edgenas.spaces import get_space, load_specs
    from edgenas.train import load_dataset

    over = {k: literal(v) for k, v in (kv.split("=", 1) for kv in args.overrides)}
    budget = Budget(
        subset=args.subset,
        epochs=args.epochs,
        warmup_epochs=int(over.pop("warmup_epochs", 1)),
        cells_per_stage=int(over.pop("cells", 1)),
    )
    config = search_config(args.strategy, args.seed, budget, alpha_lr=over.pop("alpha_lr", None), **over)
    run = RUNS / f"{args.tag}-{args.strategy}-s{args.seed}"
    start = time.perf_counter()
    recorded = run / "config.json"
    if recorded.is_file() and not same_config(json.loads(recorded.read_text()).get("config"), config):
        raise SystemExit(f"{run} holds a probe of other options; use another TAG")
    if (run / "arch.json").is_file():  # a finished probe is judged again, not searched
        arch = load_specs(run / "arch.json")[0]
    else:
        images = load_dataset(args.data, image_size=32)
        arch, _ = get_strategy(args.strategy).run(get_space("nb201"), [], images, config, run)
    verdict = load_nb201(args.data).lookup(arch)
    line = {
        "tag": args.tag,
        "strategy": args.strategy,
        "seed": args.seed,
        "s": round(time.perf_counter() - start),
        "index": verdict["index"],
        "arch": verdict["arch"],
        "test": verdict["test_acc"],
    }
    print(json.dumps(line), flush=True)
    with (RUNS / "results.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()

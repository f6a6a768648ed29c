"""NNI's one-shot strategies as peers on NAS-Bench-201: the same images, split and budget as ``benchmarks/nb201.py``.

Usage (NNI is a benchmark-only dependency, installed beside edgenas in its own venv):
    python3.11 -m venv .venv-nni
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
        > .venv-nni/lib/python3.11/site-packages/edgenas-main.pth  # edgenas and torch from the project's venv
    .venv-nni/bin/pip install nni==3.0 pytorch-lightning
    .venv-nni/bin/python benchmarks/nni_nb201.py --data DIR --strategies darts,gumbel,proxyless [--seeds 1]
        [--subset 20000] [--epochs 8] [--cells-per-stage 1]

Seeds 0..N-1; the seeds a strategy already has at the same budget in the results file are kept (a rerun with a
larger --seeds adds the missing ones).

Each strategy searches NNI's own ``NasBench201`` model space (``num_modules_per_stack`` = the cells per stage of
our searched network) through ``NasExperiment`` with the ``Classification`` evaluator on the CPU: weights on the
weight half of the class-balanced subset (random crop + flip, SGD 0.025 with momentum 0.9, weight decay 5e-4, as
our engine), architecture on the other half (Adam at the lr our referee gives this budget,
:func:`edgenas.bench.referee.protocol_alpha_lr`). The exported cell (NNI's op names mapped to the benchmark's) is
judged by the same tables. Results: ``benchmarks/results/nni_nb201.{json,md}``; experiments under
``runs/bench-nni`` (not ``~/nni-experiments``).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, machine, write_results

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-nni"
#: NNI's op names -> NAS-Bench-201's.
NNI_OPS = {
    "none": "none",
    "skip_connect": "skip_connect",
    "conv_1x1": "nor_conv_1x1",
    "conv_3x3": "nor_conv_3x3",
    "avg_pool_3x3": "avg_pool_3x3",
}
#: NNI's edge labels ``cell/{from}_{to}`` in the benchmark's string order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).
EDGE_LABELS = ("0_1", "0_2", "1_2", "0_3", "1_3", "2_3")


class AugmentedTensors(torch.utils.data.Dataset):
    """Normalised float images of some indices of a uint8 dataset, with a seeded random crop (pad 4) and flip."""

    def __init__(self, dataset, labels: np.ndarray, indices: np.ndarray, mean, std, augment: bool, seed: int) -> None:
        images = torch.stack([dataset[int(i)][0] for i in indices]).float() / 255
        self.images = (images - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        self.labels = torch.as_tensor(labels[indices], dtype=torch.long)
        self.augment, self.generator = augment, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.augment:
            dy, dx = torch.randint(0, 9, (2,), generator=self.generator).tolist()
            flip = bool(torch.rand((), generator=self.generator) < 0.5)
            x = torch.nn.functional.pad(x, (4, 4, 4, 4))[:, dy : dy + 32, dx : dx + 32]
            x = x.flip(-1) if flip else x
        return x, self.labels[i]


def cell_string(exported: dict) -> str:
    """NNI's exported dict (``cell/3_1`` -> op) as the benchmark's cell string."""
    ops = [NNI_OPS[exported[f"cell/{edge}"]] for edge in EDGE_LABELS]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def nni_strategy(name: str, alpha_lr: float):
    from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless

    if name == "gumbel":  # GDAS-like: NNI's GumbelDARTS with the protocol's temperature 10 -> 0.1
        return GumbelDARTS(arc_learning_rate=alpha_lr, temperature=(10.0, 0.1))
    return {"darts": DARTS, "proxyless": Proxyless}[name](arc_learning_rate=alpha_lr)


def search(name: str, seed: int, args: argparse.Namespace, data) -> dict:
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.hub.pytorch import NasBench201

    from edgenas.bench.referee import Budget, protocol_alpha_lr, search_config
    from edgenas.search.engine import search_split

    budget = Budget(subset=args.subset, epochs=args.epochs, warmup_epochs=0, cells_per_stage=args.cells_per_stage)
    config = search_config("gdas", seed, budget)
    w_idx, a_idx = search_split(data.train_labels, config)
    train = AugmentedTensors(data.train, data.train_labels, w_idx, data.mean, data.std, True, seed)
    valid = AugmentedTensors(data.train, data.train_labels, a_idx, data.mean, data.std, False, seed)
    evaluator = Classification(
        learning_rate=config.w_lr,
        weight_decay=config.w_weight_decay,
        optimizer=functools.partial(torch.optim.SGD, momentum=config.w_momentum),
        train_dataloaders=DataLoader(train, batch_size=budget.batch_size, shuffle=True),
        val_dataloaders=DataLoader(valid, batch_size=budget.batch_size, shuffle=True),
        max_epochs=budget.epochs,
        num_classes=10,
        accelerator="cpu",
        export_onnx=False,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
    )
    torch.manual_seed(seed)  # NNI draws from the global RNG; this script is a benchmark, not library code
    space = NasBench201(num_modules_per_stack=args.cells_per_stage)
    experiment = NasExperiment(space, evaluator, nni_strategy(name, protocol_alpha_lr(budget)))
    experiment.config.experiment_working_directory = str(RUNS.resolve())
    start = time.perf_counter()
    experiment.run()
    seconds = time.perf_counter() - start
    exported = experiment.export_top_models(formatter="dict")[0]
    return {
        "strategy": name,
        "seed": seed,
        "search_s": round(seconds, 1),
        "nni_cell": exported,
        "arch": cell_string(exported),
        "alpha_lr": protocol_alpha_lr(budget),
    }


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# NNI's one-shot strategies on NAS-Bench-201 (peers of `benchmarks/nb201.py`)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, NNI {payload['nni']}, commit "
        f"{m['git_commit']}, {m['date']}.",
        f"Budget: {payload['subset']} class-balanced training images (half w, half alpha), {payload['epochs']} "
        f"epochs, batch 64; NNI's NasBench201 space with {payload['cells_per_stage']} cell(s) per stage. Accuracy: "
        "the tables' true 200-epoch CIFAR-10 test accuracy of the exported cell. How NNI's loop differs from ours: an",
        "architecture step and a weight step alternate on every batch (DARTS' Algorithm 1), constant learning rates",
        "(no cosine), no weights-only warm-up, plain momentum; GumbelDARTS mixes every op by soft Gumbel weights.",
        "",
        "| NNI strategy | test acc. (%) | search (s) | cells |",
        "|---|---|---|---|",
    ]
    for name, records in payload["strategies"].items():
        accs = [r["test_acc"] for r in records]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        secs = statistics.fmean(r["search_s"] for r in records)
        cells = ", ".join(f"{r['index']} (`{r['arch']}`)".replace("|", "\\|") for r in records)
        lines.append(f"| {name} | {statistics.fmean(accs):.2f} ± {std:.2f} | {secs:.0f} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--strategies", default="darts,gumbel,proxyless")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)

    import nni

    from edgenas.bench import load_nb201
    from edgenas.train import load_dataset

    table, data = load_nb201(args.data), load_dataset(args.data, image_size=32)
    previous = RESULTS / "nni_nb201.json"
    payload = json.loads(previous.read_text()) if previous.is_file() else {"strategies": {}}
    budget = {"subset": args.subset, "epochs": args.epochs, "cells_per_stage": args.cells_per_stage}
    same_budget = all(payload.get(k) == v for k, v in budget.items())
    if not same_budget:
        payload["strategies"] = {}
    payload.update(nni=nni.__version__, **budget)
    for name in args.strategies.split(","):
        # seeds already recorded at this budget are kept, not searched again (a run adds the seeds it lacks)
        records = {r["seed"]: r for r in payload["strategies"].get(name, [])} if same_budget else {}
        for seed in (s for s in range(args.seeds) if s not in records):
            record = search(name, seed, args, data)
            record.update(table.lookup(record["arch"]))
            records[seed] = record
            print(name, seed, record["arch"], record.get("test_acc"), f"{record['search_s']:.0f} s", flush=True)
        payload["strategies"][name] = [records[s] for s in sorted(records)]
    payload["machine"] = machine()
    paths = write_results("nni_nb201", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

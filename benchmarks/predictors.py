"""Predictor figures: every kind on every data set, few-shot transfer, sample efficiency, prediction speed.

Usage (one command runs everything; phases can be run alone and keep the others' last results):
    python benchmarks/predictors.py all --data DIR [--own-n 2000] [--train 1000] [--epochs 200]
    python benchmarks/predictors.py own-profile|own-lut|fit|fewshot|efficiency|speed --data DIR
    python benchmarks/predictors.py attention|sampling --data DIR   (the GNN's attention forms; uniform vs ordered
        training archs: ``benchmarks/predictors_surgenas.py``)

Data sets: this machine's ort-cpu latency (batch 1, 1 thread) of ``--own-n`` sampled ``mbv2-cifar`` archs
(profiled into ``runs/predictors/own.sqlite``, resumable, exported to ``results/mbv2_cifar_ortcpu_latency.csv``);
HW-NAS-Bench NB201 Edge GPU latency and energy and Raspberry Pi 4 latency; HELP FBNet Raspberry Pi 4, Xeon Gold 6226
and Titan RTX latency. Each is split at random (seed 0) into ``--train`` training archs and the rest for testing;
every kind is fitted on the same split. On the own data set the LUT of ops timed in isolation (thesis Fig 4.5) is
scored too. Few-shot: a MLP pre-trained (batch 64, at most 50 epochs) on all archs of the other devices of the same
benchmark (pooled, each standardised) is adapted to the target device with n in {10, 20, 50} measured archs;
Spearman on the rest, mean over 5 draws, next to the same MLP trained on the n archs alone. The sample-efficiency
curve uses batch 8 up to 1,000 training archs and batch 64 beyond.
Results: ``results/predictors.json``, ``.md`` and ``predictors_*.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import predictors_surgenas as surgenas_phases
import torch
from _common import RESULTS, machine, write_results

from edgenas.hardware import MeasurementStore, Protocol, RuntimeOptions, get_runtime, profile
from edgenas.hardware.device import LocalDevice
from edgenas.predictors import (
    FitConfig,
    adapt_predictor,
    fit_predictor,
    fit_sklearn,
    pooled_table,
    scores,
    table_from_csv,
    table_from_store,
)
from edgenas.predictors.lut import lut_predictor, measure_op_table
from edgenas.spaces import get_space

OWN_STORE = Path("runs/predictors/own.sqlite")
OWN_DEVICE = "this-cpu"
OWN_CSV = RESULTS / "mbv2_cifar_ortcpu_latency.csv"
KINDS = ("lut", "mlp", "gcn", "gnn", "svr", "rf", "gbr")
#: Phases that ``all`` does not run (each says when to run it).
SEPARATE_PHASES = ("own-interleaved", "attention", "sampling")


def datasets(data: Path) -> dict[str, tuple]:
    """name -> (loader of an ArchTable, benchmark group for few-shot)."""
    nb201, fbnet = get_space("nb201"), get_space("fbnet")
    hw = data / "hwnasbench/hwnasbench_nb201_cifar10.csv"
    hp = data / "help/help_fbnet_latency.csv"
    out = {
        "own ort-cpu mbv2-cifar": (lambda: own_table(), "own"),
        "HW-NAS-Bench edgegpu latency": (
            lambda: table_from_csv(hw, nb201, "arch_str", "cifar10_edgegpu_latency_ms"),
            "hwnasbench",
        ),
        "HW-NAS-Bench edgegpu energy": (
            lambda: table_from_csv(hw, nb201, "arch_str", "cifar10_edgegpu_energy_mJ", "energy_mJ"),
            "hwnasbench",
        ),
        "HW-NAS-Bench raspi4 latency": (
            lambda: table_from_csv(hw, nb201, "arch_str", "cifar10_raspi4_latency_ms"),
            "hwnasbench",
        ),
        "HELP raspi4": (lambda: table_from_csv(hp, fbnet, "blocks", "raspi4_ms"), "help"),
        "HELP gold6226": (lambda: table_from_csv(hp, fbnet, "blocks", "gold_6226_ms"), "help"),
        "HELP titanrtx": (lambda: table_from_csv(hp, fbnet, "blocks", "titan_rtx_1_ms"), "help"),
    }
    return out


def own_table():
    """The own data set: the store when this machine profiled it, else the committed export of it."""
    space = get_space("mbv2-cifar")
    if OWN_STORE.is_file():
        return table_from_store(OWN_STORE, OWN_DEVICE, space)
    return table_from_csv(OWN_CSV, space, "arch", "value", where={"device": OWN_DEVICE})


def own_profile(n: int, interleave: int = 1) -> dict:
    """Profile the own data set; with ``interleave`` > 1 into its own device (``this-cpu-i<K>``) of the same store."""
    space = get_space("mbv2-cifar")
    rt = get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1))
    device = OWN_DEVICE if interleave == 1 else f"{OWN_DEVICE}-i{interleave}"
    with MeasurementStore(OWN_STORE) as db:
        report = profile(
            space.sample(seed=7, n=n),
            rt,
            db,
            protocol=Protocol(warmup=5, repeats=20),
            device_name=device,
            interleave=interleave,
        )
        rows = db.export_csv(RESULTS / "mbv2_cifar_ortcpu_latency.csv")
    return {
        "requested": report.requested,
        "measured_now": report.measured,
        "already_stored": report.skipped,
        "flagged_now": report.flagged,
        "seconds_now": round(report.seconds, 1),
        "rows": rows,
        "protocol": f"ort-cpu, batch 1, 1 thread, warm-up 5, 20 timed runs, median, {interleave} arch(s) round-robin",
    }


def own_interleaved(n: int, train_n: int, epochs: int, previous: dict) -> dict:
    """The own data set profiled again with 20 archs round-robin (steadier ranks), and every kind fitted on it."""
    report = own_profile(n, interleave=20)
    table = table_from_store(OWN_STORE, f"{OWN_DEVICE}-i20", get_space("mbv2-cifar"))
    fits = fit_table(table, train_n, epochs, previous.get("own_lut"))
    previous.setdefault("fit", {})["own ort-cpu mbv2-cifar, 20 archs round-robin"] = fits
    return report


def own_lut() -> dict:
    space = get_space("mbv2-cifar")
    rt = get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1))
    start = time.perf_counter()
    table = measure_op_table(space, LocalDevice(rt, rt.options, Protocol(warmup=5, repeats=20)))
    return {
        "table_ms": np.where(np.isnan(table), None, table).tolist(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def fit_table(table, train_n: int, epochs: int, lut: dict | None) -> dict:
    """Every kind on one seeded split of ``table`` (plus the LUT of ops timed alone when ``lut`` is given)."""
    train, test = table.split(train_n, seed=0)
    rows = []
    for kind in KINDS:
        start = time.perf_counter()
        if kind in ("svr", "rf", "gbr"):
            pred = fit_sklearn(kind, train).predict_values(test.specs)
        else:
            pred = fit_predictor(kind, train, FitConfig(epochs=epochs)).predict(test.specs)
        rows.append({"kind": kind, "fit_s": round(time.perf_counter() - start, 1), **scores(pred, test.values)})
    if lut:
        measured = lut_predictor(table.space, np.array(lut["table_ms"], dtype=float), train, table.device)
        rows.append(
            {
                "kind": "lut (ops timed alone)",
                "fit_s": lut["seconds"],
                **scores(measured.predict(test.specs), test.values),
            }
        )
    return {
        "n": len(table),
        "train": len(train),
        "test": len(test),
        "metric": table.metric,
        "value_range": [float(table.values.min()), float(table.values.max())],
        "rows": rows,
    }


def fit_all(data: Path, train_n: int, epochs: int, previous: dict) -> dict:
    results = {}
    for name, (load, _) in datasets(data).items():
        try:
            table = load()
        except Exception as exc:  # the own store may not exist yet
            results[name] = {"error": str(exc)}
            continue
        results[name] = fit_table(table, train_n, epochs, previous.get("own_lut") if name.startswith("own") else None)
        print(f"fitted {name}", file=sys.stderr, flush=True)
    return results


def fewshot(data: Path, epochs: int) -> dict:
    loaded = {name: load() for name, (load, group) in datasets(data).items() if group != "own"}
    groups = {name: group for name, (_, group) in datasets(data).items()}
    out = {}
    for target, table in loaded.items():
        sources = [t for n, t in loaded.items() if n != target and groups[n] == groups[target]]
        # tens of thousands of pooled rows: batch 64 and at most 50 epochs keep pre-training to a minute or two
        pre = fit_predictor("mlp", pooled_table(sources), FitConfig(epochs=min(epochs, 50), batch_size=64))
        row = {"sources": [n for n in loaded if n != target and groups[n] == groups[target]]}
        for n in (10, 20, 50):
            adapted, scratch = [], []
            for draw in range(5):
                shots, rest = table.split(n, seed=draw)
                adapted.append(scores(adapt_predictor(pre, shots, seed=draw).predict(rest.specs), rest.values))
                scratch.append(
                    scores(
                        fit_predictor("mlp", shots, FitConfig(epochs=epochs, seed=draw)).predict(rest.specs),
                        rest.values,
                    )
                )
            row[str(n)] = {
                "adapted_spearman": float(np.mean([s["spearman"] for s in adapted])),
                "scratch_spearman": float(np.nanmean([s["spearman"] for s in scratch])),
                "adapted_mape": float(np.mean([s["mape"] for s in adapted])),
            }
        out[target] = row
        print(f"few-shot {target}", file=sys.stderr, flush=True)
    return out


def efficiency(data: Path, epochs: int) -> dict:
    name = "HW-NAS-Bench edgegpu latency"
    table = datasets(data)[name][0]()
    pool, test = table.split(0.8, seed=0)
    sizes = [10, 20, 50, 100, 200, 500, 1000, 2000, len(pool)]
    curve = {}
    for kind in ("lut", "mlp", "gnn"):
        curve[kind] = []
        for size in sizes:
            train = pool.subset(np.arange(size))
            # thesis batch 8 up to 1,000 archs; beyond, batch 64 keeps the step count (and the CPU time) bounded
            config = FitConfig(epochs=epochs, batch_size=8 if size <= 1000 else 64)
            pred = fit_predictor(kind, train, config).predict(test.specs)
            curve[kind].append({**scores(pred, test.values), "train_n": size})
        print(f"efficiency {kind}", file=sys.stderr, flush=True)
    _plot_efficiency(curve, name)
    return {"dataset": name, "test": len(test), "curve": curve}


def _plot_efficiency(curve: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, rows in curve.items():
        ax.plot([r["train_n"] for r in rows], [r["spearman"] for r in rows], marker="o", label=kind)
    ax.set_xscale("log")
    ax.set_xlabel("training archs")
    ax.set_ylabel("Spearman on held-out archs")
    ax.set_title(f"sample efficiency: {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "predictors_efficiency.png", dpi=110)
    plt.close(fig)


def speed(data: Path) -> dict:
    table = datasets(data)["HW-NAS-Bench edgegpu latency"][0]()
    out = {"torch_threads": torch.get_num_threads()}
    x = table.space.one_hot(table.specs)
    for kind in ("mlp", "gnn", "lut"):
        predictor = fit_predictor(kind, table.subset(np.arange(200)), FitConfig(epochs=1))
        with torch.no_grad():
            predictor(x[:100])
            start = time.perf_counter()
            predictor(x)
            elapsed = time.perf_counter() - start
        out[kind] = round(len(x) / elapsed)
    return out


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Latency and energy predictors",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs, {m['torch_threads']} "
        f"torch threads), torch {m['torch']}; commit {m['git_commit']}, {m['date']}. Command: "
        "`python benchmarks/predictors.py all --data DIR`.",
        "",
    ]
    own_i = payload.get("own_profile_i20")
    if own_i:
        lines += [
            f"Own data set again: the same {own_i['requested']} archs, 20 measured round-robin at a time "
            "(`python benchmarks/predictors.py own-interleaved --data DIR`), the steadier "
            "protocol of `results/hardware_cpu.md`.",
            "",
        ]
    own = payload.get("own_profile")
    if own:
        lines += [
            f"Own data set: {own['rows']} `mbv2-cifar` archs on this CPU ({own['protocol']}); "
            f"`results/mbv2_cifar_ortcpu_latency.csv`.",
            "",
        ]
    for name, res in payload.get("fit", {}).items():
        if "error" in res:
            lines += [f"## {name}", "", f"not run: {res['error']}", ""]
            continue
        unit = "mJ" if res["metric"] == "energy_mJ" else "ms"
        lines += [
            f"## {name} ({res['n']} archs, {res['value_range'][0]:.3g}-{res['value_range'][1]:.3g} {unit}; "
            f"train {res['train']}, test {res['test']})",
            "",
            f"| kind | RMSE ({unit}) | MAE | MAPE % | Kendall tau | Spearman | within 5% | within 10% | fit (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["rows"]:
            lines.append(
                f"| {r['kind']} | {r['rmse']:.4g} | {r['mae']:.4g} | {r['mape']:.2f} | {r['kendall_tau']:.4f}"
                f" | {r['spearman']:.4f} | {r['within_5']:.1f} | {r['within_10']:.1f} | {r['fit_s']} |"
            )
        lines.append("")
    fs = payload.get("fewshot")
    if fs:
        lines += [
            "## Few-shot transfer (MLP pre-trained on the other devices of the benchmark, mean of 5 draws)",
            "",
            "| target | n=10 adapted / scratch | n=20 adapted / scratch | n=50 adapted / scratch |",
            "|---|---|---|---|",
        ]
        for target, row in fs.items():
            cells = [f"{row[n]['adapted_spearman']:.3f} / {row[n]['scratch_spearman']:.3f}" for n in ("10", "20", "50")]
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines.append("")
    eff = payload.get("efficiency")
    if eff:
        lines += [
            f"## Sample efficiency ({eff['dataset']}, Spearman on {eff['test']} held-out archs; "
            "`predictors_efficiency.png`)",
            "",
            "| n | " + " | ".join(eff["curve"]) + " |",
            "|---|" + "---|" * len(eff["curve"]),
        ]
        for i, n in enumerate(row["train_n"] for row in next(iter(eff["curve"].values()))):
            lines.append(f"| {n} | " + " | ".join(f"{eff['curve'][k][i]['spearman']:.4f}" for k in eff["curve"]) + " |")
        lines.append("")
    sp = payload.get("speed")
    if sp:
        lines += [
            f"Batched prediction on this CPU ({sp['torch_threads']} threads, 15,625 NB201 archs in one batch): "
            + ", ".join(f"{k} {v:,} archs/s" for k, v in sp.items() if k != "torch_threads"),
            "",
        ]
    lines += surgenas_phases.markdown(payload)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "phase",
        choices=[
            "all",
            "own-profile",
            "own-lut",
            "fit",
            "fewshot",
            "efficiency",
            "speed",
            "own-interleaved",
            "attention",
            "sampling",
        ],
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--own-n", type=int, default=2000)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    path = RESULTS / "predictors.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    if args.phase not in SEPARATE_PHASES[1:]:  # these carry their own machine: the header is the other phases'
        payload["machine"] = machine()
    phases = {
        "own-profile": ("own_profile", lambda: own_profile(args.own_n)),
        "own-lut": ("own_lut", own_lut),
        "fit": ("fit", lambda: fit_all(args.data, args.train, args.epochs, payload)),
        "fewshot": ("fewshot", lambda: fewshot(args.data, args.epochs)),
        "efficiency": ("efficiency", lambda: efficiency(args.data, args.epochs)),
        "speed": ("speed", lambda: speed(args.data)),
        "own-interleaved": ("own_profile_i20", lambda: own_interleaved(args.own_n, args.train, args.epochs, payload)),
        "attention": (
            "attention",
            lambda: surgenas_phases.attention(
                {name: load for name, (load, _) in datasets(args.data).items()}, args.train, args.epochs
            ),
        ),
        "sampling": (
            "sampling",
            lambda: surgenas_phases.sampling(datasets(args.data)["HW-NAS-Bench edgegpu latency"][0](), args.epochs),
        ),
    }
    for phase, (key, run) in phases.items():
        if args.phase == phase or (args.phase == "all" and phase not in SEPARATE_PHASES):
            result = run()
            # phases may run side by side (each in its process): merge into the file as it is now
            payload = {**(json.loads(path.read_text()) if path.is_file() else {}), "machine": payload["machine"]}
            payload[key] = result
            if phase in SEPARATE_PHASES[1:]:
                payload[key]["machine"] = machine()
            write_results("predictors", payload, markdown(payload))
    sys.stdout.write(markdown(payload))


if __name__ == "__main__":
    main()

"""Measurement figures on this machine: repeatability and throughput of profiling, monotonicity, Comfort Zone.

Usage:
    python benchmarks/hardware_cpu.py repeatability [--n 100] [--repeats 30] [--repeats-b8 20]
    python benchmarks/hardware_cpu.py monotonic --data DIR [--n-nb201 200] [--n-fbnet 100]
    python benchmarks/hardware_cpu.py comfort [--scales 1:2:0.25]
    python benchmarks/hardware_cpu.py all --data DIR

``repeatability``: profiles the same N ``mbv2-cifar`` archs twice with ``ort-cpu`` (1 thread) at batch 1 and at
batch 8, each pass into its own device of a scratch store; reports the median relative difference and the Spearman
correlation between the two passes, and the profiling throughput (archs/min, export and verification included).
``monotonic``: imports HW-NAS-Bench and HELP, profiles N NAS-Bench-201 cells and N HELP FBNet archs on this CPU
(``ort-cpu``, batch 1, 1 thread), and tabulates gamma / R^2 / Kendall tau / Spearman for every device pair sharing
archs, with the tau >= 0.8 groups. ``comfort``: the Comfort Zone of the all-k3e6 ``mbv2-cifar`` arch on
``ort-cpu`` and ``torch-cpu`` (batch 1, 1 thread) with a plot.
Results: ``results/hardware_cpu.json`` (each phase keeps the others' last result), ``.md`` and ``comfort_cpu_*.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, write_results
from scipy import stats as sstats

from edgenas.compress.comfort import comfort_zone, parse_scales, plot_comfort
from edgenas.hardware import (
    PRESETS,
    MeasurementStore,
    Protocol,
    RuntimeOptions,
    compare_devices,
    get_runtime,
    group_devices,
    import_table,
    profile,
)
from edgenas.hardware.device import LocalDevice
from edgenas.spaces import get_space


def repeatability(n: int, repeats: int, repeats_b8: int, interleave: int = 1) -> dict:
    space = get_space("mbv2-cifar")
    specs = space.sample(seed=2024, n=n)
    out = {"n": n, "space": "mbv2-cifar", "runtime": "ort-cpu", "threads": 1, "interleave": interleave}
    with tempfile.TemporaryDirectory() as tmp, MeasurementStore(Path(tmp) / "m.sqlite") as db:
        for batch, reps in ((1, repeats), (8, repeats_b8)):
            rt = get_runtime("ort-cpu", RuntimeOptions(batch=batch, resolution=32, threads=1))
            protocol = Protocol(warmup=5, repeats=reps)
            passes, rates, flagged = [], [], []
            for p in (1, 2):
                report = profile(
                    specs, rt, db, protocol=protocol, device_name=f"pass{p}-b{batch}", interleave=interleave
                )
                values = db.values(f"pass{p}-b{batch}")
                passes.append([values[(spec.space_hash, str(spec))] for spec in specs])
                rates.append(report.measured / report.seconds * 60)
                flagged.append(report.flagged)
            a, b = np.array(passes[0]), np.array(passes[1])
            rel = np.abs(a - b) / ((a + b) / 2)
            out[f"batch{batch}"] = {
                "repeats": reps,
                "median_rel_diff": float(np.median(rel)),
                "p90_rel_diff": float(np.percentile(rel, 90)),
                "spearman": float(sstats.spearmanr(a, b).statistic),
                "kendall_tau": float(sstats.kendalltau(a, b).statistic),
                "archs_per_min": [round(r, 1) for r in rates],
                "flagged": flagged,
                "latency_ms_range": [float(a.min()), float(a.max())],
            }
    return out


def monotonic(data: Path, n_nb201: int, n_fbnet: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, MeasurementStore(Path(tmp) / "m.sqlite") as db:
        for preset, file in (
            ("hwnasbench-nb201", "hwnasbench/hwnasbench_nb201_cifar10.csv"),
            ("help-fbnet", "help/help_fbnet_latency.csv"),
        ):
            p = PRESETS[preset]
            import_table(db, data / file, get_space(p["space"]), p["arch_column"], p["columns"], source=p["source"])
        rt = get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1))
        protocol = Protocol(warmup=5, repeats=30)
        nb201 = get_space("nb201")
        rng = np.random.default_rng(0)
        cells = [nb201.from_index(int(i)) for i in rng.choice(15625, size=n_nb201, replace=False)]
        profile(cells, rt, db, protocol=protocol, device_name="this-cpu-ort")
        fbnet = get_space("fbnet")
        with (data / "help/help_fbnet_latency.csv").open() as f:
            import csv

            blocks = [row["blocks"] for row in csv.DictReader(f)]
        picked = [fbnet.parse(blocks[int(i)]) for i in rng.choice(len(blocks), size=n_fbnet, replace=False)]
        profile(picked, rt, db, protocol=protocol, device_name="this-cpu-ort")
        names = [d["name"] for d in db.devices()]
        values = {name: db.values(name, metric="latency_ms") for name in names}
    pairs, taus = [], {}
    for a, b in itertools.combinations(names, 2):
        common = set(values[a]) & set(values[b])
        if len(common) < 3:
            continue
        m = compare_devices(values[a], values[b])
        taus[(a, b)] = m.kendall_tau
        pairs.append({"a": a, "b": b, **m.as_dict()})
    groups = group_devices(names, taus, 0.8)
    return {"pairs": pairs, "groups_tau_0.8": groups, "n_nb201": n_nb201, "n_fbnet": n_fbnet}


def comfort(scales: str) -> dict:
    space = get_space("mbv2-cifar")
    spec = space.make_spec(["k3e6"] * space.num_layers)
    out = {"arch": "mbv2-cifar all-k3e6", "scales": scales}
    for runtime in ("ort-cpu", "torch-cpu"):
        rt = get_runtime(runtime, RuntimeOptions(batch=1, resolution=32, threads=1))
        device = LocalDevice(rt, rt.options, Protocol(warmup=5, repeats=30))
        report = comfort_zone(spec, device, parse_scales(scales))
        png = RESULTS / f"comfort_cpu_{runtime}.png"
        plot_comfort(report, png)
        out[runtime] = {"zone_scale": report.zone_scale, "band": report.band, "rows": report.rows, "plot": png.name}
    return out


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Measurement on this CPU",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}; commit {m['git_commit']}, {m['date']}.",
        "",
    ]
    for key in sorted(k for k in payload if k.startswith("repeatability")):
        r = payload[key]
        lines += [
            f"## Repeatability (`python benchmarks/hardware_cpu.py repeatability --n {r['n']} --interleave "
            f"{r.get('interleave', 1)}`)",
            "",
            f"The same {r['n']} `{r['space']}` archs profiled twice, {r['runtime']}, {r['threads']} thread, "
            f"{r.get('interleave', 1)} arch(s) measured round-robin at a time; "
            "goal: median relative difference <= 2%, Spearman >= 0.99.",
            "",
            "| batch | timed runs | median rel. diff | p90 rel. diff | Spearman | Kendall tau | archs/min "
            "(pass 1, 2) | flagged (pass 1, 2) | latency range (ms) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for b in (1, 8):
            x = r[f"batch{b}"]
            lines.append(
                f"| {b} | {x['repeats']} | {x['median_rel_diff']:.2%} | {x['p90_rel_diff']:.2%} | "
                f"{x['spearman']:.4f} | {x['kendall_tau']:.4f} | {x['archs_per_min'][0]}, "
                f"{x['archs_per_min'][1]} | {x['flagged'][0]}, {x['flagged'][1]} | "
                f"{x['latency_ms_range'][0]:.2f}-{x['latency_ms_range'][1]:.2f} |"
            )
        lines.append("")
    mo = payload.get("monotonic")
    if mo:
        lines += [
            "## Performance monotonicity (`python benchmarks/hardware_cpu.py monotonic --data DIR`)",
            "",
            f"Imported HW-NAS-Bench (NB201) and HELP (FBNet) devices, plus this CPU (`this-cpu-ort`: ort-cpu, "
            f"batch 1, 1 thread) on {mo['n_nb201']} NB201 cells and {mo['n_fbnet']} HELP archs. gamma: "
            "least squares of A = gamma * B through the origin.",
            "",
            "| device A | device B | common archs | gamma | R^2 | Kendall tau | Spearman |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in mo["pairs"]:
            lines.append(
                f"| {p['a']} | {p['b']} | {p['n']} | {p['gamma']:.3f} | {p['r2']:.3f} | "
                f"{p['kendall_tau']:.3f} | {p['spearman']:.3f} |"
            )
        lines += [
            "",
            "Groups (every pair in a group has Kendall tau >= 0.8): "
            + "; ".join("{" + ", ".join(g) + "}" for g in mo["groups_tau_0.8"]),
            "",
        ]
    c = payload.get("comfort")
    if c:
        lines += [
            f"## Comfort Zone (`python benchmarks/hardware_cpu.py comfort --scales {c['scales']}`)",
            "",
            f"{c['arch']}, batch 1, 1 thread, interleaved measurement of all scales.",
            "",
            "| runtime | scale | latency (ms) | vs base | intensity |",
            "|---|---|---|---|---|",
        ]
        for runtime in ("ort-cpu", "torch-cpu"):
            for row in c[runtime]["rows"]:
                lines.append(
                    f"| {runtime} | {row['scale']:.2f} | {row['median_ms']:.3f} | "
                    f"{row['latency_ratio']:.2f}x | {row['intensity']:.1f} |"
                )
        for runtime in ("ort-cpu", "torch-cpu"):
            z = c[runtime]
            verdict = f"zone up to x{z['zone_scale']}" if z["zone_scale"] > 1 else "no Comfort Zone"
            lines.append(f"\n{runtime}: {verdict} (noise band +{z['band']:.1%}); plot `{z['plot']}`.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["repeatability", "monotonic", "comfort", "all"])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--repeats-b8", type=int, default=20)
    parser.add_argument("--interleave", type=int, default=1, help="repeatability: measure K archs round-robin")
    parser.add_argument("--n-nb201", type=int, default=200)
    parser.add_argument("--n-fbnet", type=int, default=100)
    parser.add_argument("--scales", default="1:2:0.25")
    args = parser.parse_args()
    path = RESULTS / "hardware_cpu.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    payload["machine"] = machine()
    if args.phase in ("monotonic", "all") and args.data is None:
        sys.exit("monotonic needs --data DIR (the folder with hwnasbench/ and help/)")
    phases = {
        "repeatability": lambda: repeatability(args.n, args.repeats, args.repeats_b8, args.interleave),
        "monotonic": lambda: monotonic(args.data, args.n_nb201, args.n_fbnet),
        "comfort": lambda: comfort(args.scales),
    }
    for name, run in phases.items():
        if args.phase in (name, "all"):
            key = f"{name}_interleave{args.interleave}" if name == "repeatability" and args.interleave > 1 else name
            payload[key] = run()
            write_results("hardware_cpu", payload, markdown(payload))  # keep each phase even if a later one fails
    sys.stdout.write(markdown(payload))


if __name__ == "__main__":
    main()

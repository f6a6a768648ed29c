"""Domino latency figures: what grafting and the collapse buy on this CPU (ONNX Runtime, batch 8).

Usage:
    python benchmarks/domino_latency.py all [--threads 1] [--repeats 10]
    python benchmarks/domino_latency.py mbv2|resnet50|aggressive

* ``mbv2`` / ``resnet50``: latency vs the number G of grafted blocks (the first G blocks from the input), for the
  grafted training form (activations gone, convs not merged; ONNX Runtime still folds BN and fuses what it can)
  and for the collapsed network (thesis Fig 5.2 and 5.8), at 224x224 and 32x32.
* ``aggressive``: Domino-Aggressive (every block grafted, collapsed) against torchvision MobileNetV2 x1.0 and the
  uniform width baselines x0.8 ... x0.2 (latency, params, mult-adds: the latency columns of thesis Table 5.2).

Every model of one figure at one resolution is loaded into its own ONNX Runtime session and the sessions are timed
round-robin (``measure_interleaved``), so the machine's drift hits them alike; the speed-ups are ratios within one
run. Weights are random (latency does not depend on them); 1000 classes as on ImageNet.
Results: ``results/domino_latency.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torchvision
from _common import RESULTS, machine, write_results

from edgenas.hardware import Protocol, RuntimeOptions, get_runtime
from edgenas.hardware.protocol import measure_interleaved
from edgenas.nn import graft, graftable_blocks, reparameterize
from edgenas.nn.costs import measure_costs

BATCH = 8
RESOLUTIONS = (224, 32)
WIDTHS = (1.0, 0.8, 0.6, 0.4, 0.2)


def _costs(model: torch.nn.Module, resolution: int) -> dict:
    report = measure_costs(model, (1, 3, resolution, resolution))
    return {"params": report.params, "mult_adds": report.mult_adds}


def _time(models: dict[str, torch.nn.Module], resolution: int, threads: int, protocol: Protocol) -> dict[str, dict]:
    """Median latency (ms) of each model, timed round-robin in ONNX Runtime sessions."""
    runtime = get_runtime("ort-cpu", RuntimeOptions(batch=BATCH, resolution=resolution, threads=threads))
    sessions = {name: runtime.load(model) for name, model in models.items()}
    try:
        stats = measure_interleaved([s.run for s in sessions.values()], protocol)
    finally:
        for s in sessions.values():
            s.close()
    return {
        name: {"median_ms": s.median_ms, "iqr_ms": s.iqr_ms, "flagged": s.flagged}
        for name, s in zip(sessions, stats, strict=True)
    }


def graft_sweep(arch: str, g_values: list[int], threads: int, protocol: Protocol) -> dict:
    out: dict = {"arch": arch, "g_values": g_values, "by_resolution": {}}
    n_blocks = len(graftable_blocks(getattr(torchvision.models, arch)()))
    for resolution in RESOLUTIONS:
        models, costs = {}, {}
        for g in g_values:
            torch.manual_seed(0)
            grafted = graft(getattr(torchvision.models, arch)(), "0" * g + "1" * (n_blocks - g)).eval()
            models[f"G={g} grafted"] = grafted
            models[f"G={g} collapsed"] = reparameterize(grafted)
            costs[f"G={g} grafted"] = _costs(grafted, resolution)
            costs[f"G={g} collapsed"] = _costs(models[f"G={g} collapsed"], resolution)
        start = time.perf_counter()
        latency = _time(models, resolution, threads, protocol)
        rows = []
        for g in g_values:
            grafted, collapsed = latency[f"G={g} grafted"], latency[f"G={g} collapsed"]
            rows.append(
                {
                    "G": g,
                    "grafted_ms": grafted["median_ms"],
                    "collapsed_ms": collapsed["median_ms"],
                    "flagged": grafted["flagged"] or collapsed["flagged"],
                    "grafted_mult_adds": costs[f"G={g} grafted"]["mult_adds"],
                    "collapsed_mult_adds": costs[f"G={g} collapsed"]["mult_adds"],
                    "collapsed_params": costs[f"G={g} collapsed"]["params"],
                }
            )
        base = rows[0]["collapsed_ms"]
        for row in rows:
            row["speedup_vs_G0"] = base / row["collapsed_ms"]
        out["by_resolution"][str(resolution)] = {"rows": rows, "wall_s": time.perf_counter() - start}
        print(f"{arch} @{resolution}: " + ", ".join(f"G={r['G']} {r['collapsed_ms']:.2f} ms" for r in rows))
    return out


def aggressive(threads: int, protocol: Protocol) -> dict:
    out: dict = {"by_resolution": {}}
    for resolution in RESOLUTIONS:
        torch.manual_seed(0)
        models = {f"MobileNetV2 x{w}": torchvision.models.mobilenet_v2(width_mult=w).eval() for w in WIDTHS}
        models["Domino-Aggressive"] = reparameterize(graft(torchvision.models.mobilenet_v2(), "all"))
        costs = {name: _costs(m, resolution) for name, m in models.items()}
        latency = _time(models, resolution, threads, protocol)
        base = latency["MobileNetV2 x1.0"]["median_ms"]
        rows = [
            {"model": name, **latency[name], **costs[name], "speedup_vs_x1": base / latency[name]["median_ms"]}
            for name in models
        ]
        out["by_resolution"][str(resolution)] = rows
        print(f"aggressive @{resolution}: " + ", ".join(f"{r['model']} {r['median_ms']:.2f} ms" for r in rows))
    return out


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Domino latency: grafting and linear reparameterisation",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), onnxruntime {m['onnxruntime']}, torch {m['torch']}; "
        f"commit {m['git_commit']}, {m['date']}. ONNX Runtime CPU, batch {BATCH}, {payload['threads']} intra-op "
        f"thread(s), graph optimisation ALL (it folds BN and fuses conv+activation itself). Protocol: "
        f"{payload['protocol']}, models of one table timed round-robin. Command: "
        "`python benchmarks/domino_latency.py all`.",
        "",
    ]
    for key in ("mbv2", "resnet50"):
        sweep = payload.get(key)
        if not sweep:
            continue
        for res, block in sweep["by_resolution"].items():
            lines += [
                f"## {sweep['arch']}: latency vs grafted blocks G (first G blocks), {res}x{res}",
                "",
                "| G | grafted (ms) | collapsed (ms) | collapsed speed-up vs G=0 | mult-adds grafted (M) | "
                "mult-adds collapsed (M) |",
                "|---|---|---|---|---|---|",
            ]
            for r in block["rows"]:
                flag = " (noisy)" if r["flagged"] else ""
                lines.append(
                    f"| {r['G']} | {r['grafted_ms']:.2f} | {r['collapsed_ms']:.2f}{flag} | {r['speedup_vs_G0']:.2f}x | "
                    f"{r['grafted_mult_adds'] / 1e6:.1f} | {r['collapsed_mult_adds'] / 1e6:.1f} |"
                )
            lines.append("")
    agg = payload.get("aggressive")
    if agg:
        for res, rows in agg["by_resolution"].items():
            lines += [
                f"## Domino-Aggressive vs MobileNetV2 width baselines, {res}x{res}",
                "",
                "| model | latency (ms) | speed-up vs x1.0 | params (M) | mult-adds (M) |",
                "|---|---|---|---|---|",
            ]
            for r in rows:
                flag = " (noisy)" if r["flagged"] else ""
                lines.append(
                    f"| {r['model']} | {r['median_ms']:.2f}{flag} | {r['speedup_vs_x1']:.2f}x | "
                    f"{r['params'] / 1e6:.3f} | {r['mult_adds'] / 1e6:.1f} |"
                )
            lines.append("")
        rows = {r["model"]: r for r in agg["by_resolution"].get("224", [])}
        if rows:
            speedup = rows["Domino-Aggressive"]["speedup_vs_x1"]
            macs = rows["Domino-Aggressive"]["mult_adds"] / rows["MobileNetV2 x1.0"]["mult_adds"]
            lines += [
                f"Goal (issue 6): Domino-Aggressive >= 3x faster than MobileNetV2 x1.0 at 224x224 on this CPU: "
                f"measured {speedup:.2f}x ({'met' if speedup >= 3 else 'not met'}). The collapsed network still has "
                f"{macs:.0%} of the multiply-adds (a block's dense k x k conv costs 9 C_in C_out per pixel against "
                "6 C_in^2 + 54 C_in + 6 C_in C_out for expand-depthwise-project), so on a CPU that runs dense convs "
                "efficiently the gain comes from the memory traffic of the expanded tensors and the depthwise convs "
                "it removes; the thesis' 3.8x was measured on a Jetson Xavier GPU.",
                "",
            ]
    if payload.get("resnet50"):
        lines += [
            "ResNet-50: a bottleneck (1x1 C->C/4, 3x3, 1x1 C/4->C) collapses into a dense 3x3 C->C conv with about "
            "8x its multiply-adds, so collapsing ResNet-50 blocks is slower on this CPU at every G; grafting pays "
            "only where the merged kernel is cheaper than the chain (MobileNetV2-style blocks), which is what "
            "Domino's latency predictor has to learn per block.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["all", "mbv2", "resnet50", "aggressive"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    path = RESULTS / "domino_latency.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    protocol = Protocol(warmup=2, repeats=args.repeats, max_rel_iqr=0.10, max_retries=1)
    if args.phase in ("all", "mbv2"):
        payload["mbv2"] = graft_sweep("mobilenet_v2", [0, 2, 4, 6, 8, 10, 12, 14, 17], args.threads, protocol)
    if args.phase in ("all", "resnet50"):
        slow = Protocol(warmup=1, repeats=max(3, args.repeats // 2), max_rel_iqr=0.10, max_retries=0)
        payload["resnet50"] = graft_sweep("resnet50", [0, 4, 8, 12, 16], args.threads, slow)
    if args.phase in ("all", "aggressive"):
        payload["aggressive"] = aggressive(args.threads, protocol)
    payload["machine"] = machine()
    payload["threads"] = args.threads
    payload["protocol"] = f"warm-up 2, {args.repeats} timed runs per attempt, median (ResNet-50: half the runs)"
    write_results("domino_latency", payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    sys.exit(main())

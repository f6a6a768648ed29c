"""The main job on CIFAR-10 on this CPU (issue 29): `edgenas run configs/cifar10-cpu.toml`, then its figures.

    EDGENAS_DATA=DIR python benchmarks/cifar10_cpu.py            # run (resumable) and summarise
    python benchmarks/cifar10_cpu.py --summarise-only            # only summarise runs/cifar10-cpu

Writes ``benchmarks/results/cifar10_cpu.json`` and ``.md``: the machine, wall time per stage, T and the deployed
net's measured latency, and the same-budget baseline (found net, MobileNetV2 at the widest multiplier meeting its
measured latency, random profiled archs of that latency; top-1 mean ± std over the training seeds) with its verdict.
Run it on a quiet machine: the run measures latency.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cifar10-cpu.toml"
RUN = ROOT / "runs" / "cifar10-cpu"
#: The thesis' anchors (ImageNet, GPU budgets; Sec 4.4): another scale from these CPU figures.
THESIS_ANCHORS = "LightNAS 75.2% top-1 at 24.8 ms on a Jetson AGX Xavier; MobileNetV2 x1.0 72.0% (ImageNet)"


def run() -> float:
    """``edgenas run`` of the config (resumed where a run stands); its wall time in s."""
    start = time.perf_counter()
    edgenas = Path(sys.executable).with_name("edgenas")
    subprocess.run([str(edgenas), "run", str(CONFIG), "-o", str(RUN), "--resume"], check=True)
    return time.perf_counter() - start


def summarise(wall_s: float | None) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from edgenas.pipeline import read_run

    stages = {s["name"]: s for s in read_run(RUN)["stages"]}
    check, base = stages["check"], stages["baseline"]
    return {
        "machine": machine(),
        "config": str(CONFIG.relative_to(ROOT)),
        "wall_s": wall_s,
        "stage_wall_s": {n: round(s["seconds"], 1) for n, s in stages.items()},
        "target_ms": check["target_ms"],
        "measured_ms": check["measured_ms"],
        "error": check["error"],
        "met": check["met"],
        "tolerance": check["tolerance"],
        "search_landing": stages["search"]["measured"],
        "predictor": {"kind": stages["predictor"]["kind"], **stages["predictor"]["scores"]},
        "train_top1": stages["train"]["final"]["test_top1"],
        "baseline": {k: base[k] for k in ("rows", "epochs", "seeds", "verdict", "random_mean_top1", "random_std_top1")},
        "thesis_anchors": THESIS_ANCHORS,
    }


def _gaps(b: dict) -> str:
    """The found net's gap to each peer (points, and standard errors of the difference, as the run judged it)."""
    from edgenas.pipeline.stages_baseline import gap_in_errors

    found = b["rows"][0]
    randoms = {
        "top1": b["random_mean_top1"],
        "top1_std": b["random_std_top1"],
        "n": b["seeds"] * sum(row["role"] == "random" for row in b["rows"]),
    }
    peers = [("random archs (trainings pooled)", randoms)] + [
        (f"MobileNetV2 x{row['width']:g}", row) for row in b["rows"] if row["role"] == "width"
    ]
    parts = []
    for name, peer in peers:
        gap, errors = gap_in_errors(found, peer)
        parts.append(f"{gap:+.2f} points vs {name}" + (f" = {errors:.2f} SE" if errors is not None else ""))
    return "; ".join(parts)


def markdown(r: dict) -> str:
    m, b = r["machine"], r["baseline"]
    rows = "".join(
        f"| {row['role']}{' x' + format(row['width'], 'g') if row['role'] == 'width' else ''} | "
        f"{row['measured_ms']:.3f} | {row['top1']:.2f} ± {row['top1_std']:.2f} | "
        f"{', '.join(f'{t:.1f}' for t in row['top1_seeds'])} |\n"
        for row in b["rows"]
    )
    walls = ", ".join(f"{n} {s:.0f}" for n, s in r["stage_wall_s"].items())
    wall = f"{(r['wall_s'] or sum(r['stage_wall_s'].values())) / 60:.0f} min" + ("" if r["wall_s"] else " (stages)")
    stds = [row["top1_std"] for row in b["rows"]]
    found_ms = b["rows"][0]["measured_ms"]
    peers = ", ".join(f"{row['measured_ms'] / found_ms - 1:+.1%}" for row in b["rows"][1:])
    return f"""# CIFAR-10 on this CPU (`edgenas run {r["config"]}`)

Machine: {m["cpu"]} ({m["cpu_count"]} cores), torch {m["torch"]}, onnxruntime {m["onnxruntime"]}; commit
{m["git_commit"]}, {m["date"]}. Command: `EDGENAS_DATA=DIR python benchmarks/cifar10_cpu.py`. Wall time {wall}
(stages, s: {walls}).

Target T = {r["target_ms"]:.3f} ms (30th percentile of the profile measured here). The search stage landed the
found arch at {r["search_landing"]["error"]:+.1%} of T; the deployed net measured {r["measured_ms"]:.3f} ms in the
check stage ({r["error"]:+.1%}; {"met" if r["met"] else "missed"}: at most T + {r["tolerance"]:.0%}). Predictor:
{r["predictor"]["kind"]}, held-out Spearman {r["predictor"]["spearman"]:.3f}, MAPE {r["predictor"]["mape"]:.1f}%.

Same-budget baseline: every network trained {b["epochs"]} epochs on the run's class-balanced subset, {b["seeds"]}
seeds each (same recipe and seeds); latency measured round-robin in one session, where the peers measured
{peers} against the found net (the random archs were drawn within ±5% of its *profiled* latency).

| network | measured ms | top-1 % (mean ± std over seeds) | per seed |
|---|---|---|---|
{rows}
Seed spread of one network (std over {b["seeds"]} seeds): {min(stds):.2f}–{max(stds):.2f} points. Random archs over
archs and seeds: {b["random_mean_top1"]:.2f} ± {b["random_std_top1"]:.2f}.

Gaps: {_gaps(b)} (resolved above 2 SE; the random archs' 9 trainings are 3 archs x 3 seeds).

**Verdict (the run's):** {b["verdict"]}

Thesis anchors, for scale only (a different dataset, resolution and device): {r["thesis_anchors"]}.
"""


def _previous_wall_s() -> float | None:
    """The wall time the committed results recorded (a summary alone does not time the run)."""
    import json

    from _common import RESULTS

    path = RESULTS / "cifar10_cpu.json"
    return json.loads(path.read_text()).get("wall_s") if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summarise-only", action="store_true", help="summarise runs/cifar10-cpu without running")
    args = parser.parse_args()
    wall = _previous_wall_s() if args.summarise_only else run()
    result = summarise(wall)
    print(*write_results("cifar10_cpu", result, markdown(result)), sep="\n")


if __name__ == "__main__":
    main()

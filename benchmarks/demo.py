"""The demo's figures: `make demo` from a fresh clone, timed per stage, with its target, measured latency and accuracy
and a screenshot of its report.

    python benchmarks/demo.py --clone        # clone HEAD into a temporary folder, run `make demo` there (~15 min)
    python benchmarks/demo.py --run runs/demo  # only summarise a finished run directory
    python benchmarks/demo.py --render         # only rewrite demo.md from demo.json

Writes ``benchmarks/results/demo.json``, ``demo.md`` and ``demo_report.png`` (headless Chromium, when installed).
Run it on a quiet machine: the demo measures latency.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The pipeline's stages in running order (the JSON round trip sorts the per-stage times by name).
STAGE_ORDER = ("profile", "predictor", "search", "channels", "train", "baseline", "compress", "export", "check")
sys.path.insert(0, str(ROOT / "src"))


def clone_and_run(workdir: Path) -> tuple[Path, float]:
    """Clone HEAD into ``workdir`` and run ``make demo`` there; returns the run directory and the wall time (s),
    installation included."""
    clone = workdir / "edgenas"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    start = time.perf_counter()
    log = workdir / "make_demo.log"
    with log.open("w") as f:
        done = subprocess.run(["make", "demo"], cwd=clone, stdout=f, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"make demo failed (exit {done.returncode}); see {log}")
    shutil.copyfile(log, RESULTS / "demo_make.log")
    return clone / "runs" / "demo", seconds


def screenshot(report: Path, out: Path) -> str | None:
    """A full-page PNG of the report through headless Chromium; the reason when there is none."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return "no chromium on this machine"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1200,5200",
        f"--screenshot={out}",
        report.resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, check=False, timeout=120)
    return None if out.is_file() else "chromium wrote no screenshot"


def summarise(run: Path, total_s: float | None) -> dict:
    from edgenas.hardware.fingerprint import fingerprint
    from edgenas.pipeline import read_run

    stages = {s["name"]: s for s in read_run(run)["stages"]}
    check, train, search = stages["check"], stages["train"], stages["search"]
    return {
        "machine": fingerprint("cpu"),
        "make_demo_wall_s": total_s,
        "stage_wall_s": {n: round(s["seconds"], 1) for n, s in stages.items()},
        "target_ms": check["target_ms"],
        "target_source": search["target_source"],
        "predicted_ms": check["predicted_ms"],
        "measured_ms": check["measured_ms"],
        "error": check["error"],
        "met": check["met"],
        "tolerance": check["tolerance"],
        "top1": check["top1"],
        "chance_top1": check["chance_top1"],
        "train_epochs": train["epochs"],
        "test_images": train["final"]["test_n"],
        "model_from": check["model_from"],
        "compress": {k: stages["compress"].get(k) for k in ("applied", "reason", "mask", "speedup")},
        "predictor": stages["predictor"]["scores"],
        "predictor_kind": stages["predictor"]["kind"],
        "predictor_chosen_by": stages["predictor"].get("chosen_by"),
        "search_rounds": search["measured"]["rounds"],
        "baseline": check["baseline"],
        "trained_baseline": check["trained_baseline"],
        "advice": check["advice"],
    }


def markdown(r: dict) -> str:
    m = r["machine"]
    walls = r["stage_wall_s"]
    order = [n for n in STAGE_ORDER if n in walls] + sorted(set(walls) - set(STAGE_ORDER))
    rows = "".join(f"| {n} | {walls[n]:.0f} |\n" for n in order)
    b = r["baseline"]
    base = (
        f"found arch {b['found_oneshot_top1']:.1f}% vs {b['random_n']} profiled archs within ±{b['band']:.0%} of "
        f"its latency: median {b['random_median_oneshot_top1']:.1f}%, best {b['random_best_oneshot_top1']:.1f}%"
        if b["random_n"]
        else "no profiled arch within the band"
    )
    t = r["trained_baseline"]
    randoms = [row for row in t.get("rows", []) if row["role"] == "random"]
    width = next((row for row in t.get("rows", []) if row["role"] == "width"), None)
    random_ms = ", ".join(f"{row['measured_ms']:.3f}" for row in randoms)
    width_text = (
        f"; MobileNetV2 x{width['width']:g} ({width['measured_ms']:.3f} ms) {width['top1']:.1f}%" if width else ""
    )
    trained = (
        f"found arch {t['found_top1']:.1f}% ({t['rows'][0]['measured_ms']:.3f} ms) vs {len(randoms)} random "
        f"profiled archs of about its latency ({random_ms} ms): mean {t['random_mean_top1']:.1f}%, best "
        f"{t['random_best_top1']:.1f}%{width_text}" + (f". {t['verdict']}" if t.get("verdict") else "")
        if t.get("rows")
        else "not run"
    )
    total = f"{r['make_demo_wall_s'] / 60:.1f} min" if r["make_demo_wall_s"] else "not timed (summary of a run)"
    p = r["predictor"]
    predictor = f"{r.get('predictor_kind', '-')}: Spearman {p['spearman']:.3f}, MAPE {p['mape']:.1f}%"
    verdict = f"{r['error']:+.1%}; target {'met' if r['met'] else 'missed'}: at most T + {r['tolerance']:.0%}"
    accuracy = f"**{r['top1']:.1f}%** (chance {r['chance_top1']:.0f}%)"
    trained_on = f"{r['test_images']} CIFAR-10 sample images, {r['train_epochs']} epochs on 2,000"
    return f"""# The demo (`make demo` = `edgenas run configs/demo.toml`)

Machine: {m["cpu"]}, {m["cpu_count"]} cores, onnxruntime {m["onnxruntime"]}, torch {m["torch"]}.
Command: `python benchmarks/demo.py --clone` (a fresh clone of HEAD, `make demo` there, installation included).

`make demo` wall time: **{total}**. Per stage (s):

| stage | wall (s) |
|---|---|
{rows}
| figure | value |
|---|---|
| target T | {r["target_ms"]:g} ms ({r["target_source"]}) |
| predicted (found arch, calibrated predictor) | {r["predicted_ms"]:.3f} ms |
| measured (deployed network, from {r["model_from"]}) | {r["measured_ms"]:.3f} ms ({verdict}) |
| test top-1 ({trained_on}) | {accuracy} |
| same-budget baseline, trained {t.get("epochs", "-")} epochs each | {trained} |
| same-budget baseline (one-shot top-1) | {base} |
| compression | {"applied" if r["compress"]["applied"] else "not applied"}: {r["compress"]["reason"]} |
| predictor (held-out profile) | {predictor} |

What to change on a miss (as the run printed it): {r["advice"] or "nothing: the target was met"}.

Screenshot of the report: `demo_report.png`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", action="store_true", help="run make demo in a fresh clone of HEAD")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo", help="a finished demo run directory")
    parser.add_argument("--render", action="store_true", help="only rewrite demo.md from the committed demo.json")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.render:
        (RESULTS / "demo.md").write_text(markdown(json.loads((RESULTS / "demo.json").read_text())))
        return
    with tempfile.TemporaryDirectory(prefix="edgenas-demo-") as tmp:
        run, total = clone_and_run(Path(tmp)) if args.clone else (args.run, None)
        result = summarise(run, total)
        result["screenshot"] = screenshot(run / "report.html", RESULTS / "demo_report.png") or "demo_report.png"
    (RESULTS / "demo.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    (RESULTS / "demo.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

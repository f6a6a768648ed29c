"""Head-to-head of the ways ``edgenas search lightnas`` lands a search on its latency target (issue 28 §2).

Usage:
    python benchmarks/landing.py [--n 200] [--targets 5]      # resumable; rerun to finish a killed phase
    python benchmarks/landing.py render                       # the table from the saved results

Protocol, on this machine (ort-cpu, batch 1, 1 thread, 32 px; every command is the CLI a user runs):

1. A fresh profile of ``--n`` ``mbv2-cifar`` archs spread over the latency range (``profile --cover``), a LUT on it.
2. Targets at evenly spaced shares (20%..80%) of the profile's measured range.
   (The modes compared are those of edgenas before this head-to-head; run it from a checkout of that commit,
   e.g. ``PYTHONPATH=OLD/src python OLD/benchmarks/landing.py``: the CLI now keeps the closed loop only.)
3. Per target, one LightNAS search (the ``benchmarks/lightnas.py`` budget: 6 epochs on 1,000 sample images, seed 0)
   without a device. Every mode that works after the search continues a copy of that same search with ``--resume``
   and its flags; ``--calibrate`` works before the search, so it searches anew with the same seed:
   ``measure`` (one measurement, no landing), ``--settle-steps 300``, ``--calibrate 8``, ``--correct-rounds 3``,
   ``--refit`` (3 rounds, on a copy of the profile's store), ``--close-loop 12`` (on a copy of the store), and
   the two that led together: the ``--calibrate 8`` search continued by ``--close-loop 12``.
   Every loop measures with ``--loads 5``.
4. The judge: right after a target's modes, every mode's final arch is measured by separate ``edgenas measure``
   processes (3, each timing all modes' archs in turn, so the modes are interleaved); the median over the processes.

Figures per mode: how many targets land within ±2% (and ±5%) by the judge, the median |miss|, by the mode's own last
measurement too, measurements spent and wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, write_results

WORK = Path("runs/bench-landing")
RUNTIME = "ort-cpu"
#: The search of every target (benchmarks/lightnas.py's budget, accuracy term on).
SEARCH_ARGS = [
    "--space", "mbv2-cifar", "--data", "sample", "--epochs", "6", "--warmup-epochs", "2", "--batch-size", "50",
    "--alpha-batch-size", "10", "--subset", "1000", "--val-fraction", "0.4", "--alpha-lr", "0.01", "--device", "cpu",
    "--seed", "0",
]  # fmt: skip
LOADS = 5
TOLERANCE = 0.02
JUDGE_PROCESSES = 3
SHARES = (0.2, 0.35, 0.5, 0.65, 0.8)
#: mode -> (flags after the search, whether it needs the store, whether it searches anew, the run it continues)
MODES: dict[str, tuple[list[str], bool, bool, str]] = {
    "measure": ([], False, False, "search"),
    "settle-steps 300": (["--settle-steps", "300"], False, False, "search"),
    "calibrate 8": (["--calibrate", "8"], False, True, ""),
    "correct-rounds 3": (["--correct-rounds", "3"], False, False, "search"),
    "refit 3": (["--refit", "--refit-rounds", "3"], True, False, "search"),
    "close-loop 12": (["--close-loop", "12"], True, False, "search"),
    # the two that led, together: the calibrated search (its scaled predictor kept by --resume), then the loop
    "calibrate 8 + close-loop 12": (["--close-loop", "12"], True, False, "calibrate-8"),
}
DEVICE = "bench-landing"


def edgenas(*args: str) -> dict[str, Any]:
    """Run one CLI command with ``--json`` and return its object (a failure raises with its one-line error)."""
    done = subprocess.run([sys.executable, "-m", "edgenas", *args, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"edgenas {' '.join(args)}: {done.stdout.strip() or done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def profiled(n: int) -> tuple[Path, Path, list[float]]:
    """The store of ``n`` covering archs, the LUT fitted on it, and the measured range (ms); resumable."""
    store, lut, done = WORK / "store.db", WORK / "lut.pt", WORK / "profile.json"
    if not done.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        edgenas(
            "profile", "mbv2-cifar", "--n", str(n), "--cover", "--runtime", RUNTIME, "--threads", "1",
            "--store", str(store), "--store-device", DEVICE,
        )  # fmt: skip
        profile_s = time.perf_counter() - start
        edgenas(
            "predictor",
            "fit",
            "--kind",
            "lut",
            "--space",
            "mbv2-cifar",
            "--store",
            str(store),
            "--store-device",
            DEVICE,
            "-o",
            str(lut),
        )
        values = _stored_values(store)
        record = {"n": n, "profile_s": profile_s, "range_ms": [min(values), max(values)], "rows": len(values)}
        done.write_text(json.dumps(record, indent=1) + "\n")
    record = json.loads(done.read_text())
    return store, lut, record["range_ms"]


def _stored_values(store: Path) -> list[float]:
    from edgenas.hardware import MeasurementStore
    from edgenas.spaces import get_space

    with MeasurementStore(store, create=False) as db:
        values = db.values(DEVICE, metric="latency_ms", space_hash=get_space("mbv2-cifar").config_hash)
    return [float(v) for v in values.values()]


def land_target(value: float, store: Path, lut: Path) -> dict[str, Any]:
    """Every mode on one target; the judge measures their archs interleaved right after (resumable per mode)."""
    folder = WORK / f"T{value:.3f}"
    done = folder / "landing.json"
    if done.is_file():
        return json.loads(done.read_text())
    base = folder / "search"
    common = ["--predictor", str(lut), "--target-ms", f"{value}", *SEARCH_ARGS]
    if not (base / "summary.json").is_file():
        shutil.rmtree(base, ignore_errors=True)
        start = time.perf_counter()
        edgenas("search", "lightnas", *common, "-o", str(base))
        (folder / "search_s.txt").write_text(f"{time.perf_counter() - start}\n")
    modes = {name: _one_mode(folder, name, common, store) for name in MODES}
    judged = _judge(folder, modes)
    record = {"target_ms": value, "search_s": float((folder / "search_s.txt").read_text()), "modes": {}}
    for (name, mode), ms in zip(modes.items(), judged, strict=True):
        record["modes"][name] = mode | {"judged_ms": ms, "judged_error": ms / value - 1}
    done.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _one_mode(folder: Path, name: str, common: list[str], store: Path) -> dict[str, Any]:
    flags, needs_store, anew, source = MODES[name]
    run = folder / _folder(name)
    record_path = run.with_suffix(".json")
    if record_path.is_file():
        return json.loads(record_path.read_text())
    shutil.rmtree(run, ignore_errors=True)
    device = ["--runtime", RUNTIME, "--loads", str(LOADS), "--tolerance", str(TOLERANCE)]
    if needs_store:
        copy = folder / f"{run.name}.db"
        shutil.copyfile(store, copy)
        device += ["--store", str(copy), "--store-device", DEVICE]
    if not anew:
        shutil.copytree(folder / source, run)
    start = time.perf_counter()
    summary = edgenas("search", "lightnas", *common, "-o", str(run), *device, *flags, *([] if anew else ["--resume"]))
    seconds = time.perf_counter() - start
    measured = summary.get("measured", {})
    record = {
        "arch": (run / "arch.json").read_text(),
        "own_ms": measured.get("median_ms"),
        "own_error": measured.get("error"),
        "spent": _spent(summary, name),
        "seconds": seconds,
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _folder(mode: str) -> str:
    return mode.replace(" + ", "+").replace(" ", "-")


def _spent(summary: dict[str, Any], name: str) -> int:
    """Device measurements the mode spent (calibration points, rounds, refits, the loop's measurements)."""
    spent = len(summary.get("calibration", {}).get("points", []))
    if "closed_loop" in summary:
        return spent + len(summary["closed_loop"].get("measurements", []))
    if "correction" in summary:
        return spent + len(summary["correction"].get("rounds", []))
    return spent + 1 + len(summary.get("refits", []))


def _judge(folder: Path, modes: dict[str, dict[str, Any]]) -> list[float]:
    """Every mode's arch measured by ``JUDGE_PROCESSES`` separate ``edgenas measure`` processes (median, ms)."""
    from edgenas.spaces import load_specs, save_specs

    specs = []
    for name in modes:
        path = folder / _folder(name) / "arch.json"
        specs.append(load_specs(path)[0])
    judge = folder / "judge.jsonl"
    save_specs(judge, specs)
    runs = []
    for _ in range(JUDGE_PROCESSES):
        payload = edgenas("measure", str(judge), "--runtime", RUNTIME, "--threads", "1")
        runs.append([row["median_ms"] for row in payload["measurements"]])
    return np.median(np.asarray(runs), axis=0).tolist()


def summarise(targets: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in MODES:
        rows = [t["modes"][name] for t in targets]
        judged = [abs(r["judged_error"]) for r in rows]
        own = [abs(r["own_error"]) for r in rows if r["own_error"] is not None]
        out[name] = {
            "n": len(rows),
            "within_2": sum(e <= 0.02 for e in judged),
            "within_5": sum(e <= 0.05 for e in judged),
            "median_abs_error": statistics.median(judged),
            "own_within_2": sum(e <= 0.02 for e in own),
            "own_median_abs_error": statistics.median(own) if own else None,
            "spent_mean": statistics.fmean(r["spent"] for r in rows),
            "seconds_mean": statistics.fmean(r["seconds"] for r in rows),
            "errors": [r["judged_error"] for r in rows],
        }
    return out


def markdown(payload: dict[str, Any]) -> str:
    p = payload["profile"]
    lines = [
        "# Landing on the latency target: the modes head to head",
        "",
        f"Machine: {payload['machine']}. Command: `python benchmarks/landing.py`. Profile: {p['rows']} `mbv2-cifar` "
        f"archs (`profile --cover`), LUT, measured range {p['range_ms'][0]:.3f}-"
        f"{p['range_ms'][1]:.3f} ms; {len(payload['targets'])} targets; one LightNAS search per target (6 epochs on "
        f"1,000 sample images), every mode on a copy of it (`--calibrate` searches anew), loads {LOADS}. Judge: "
        f"{JUDGE_PROCESSES} separate `edgenas measure` processes right after the target's modes, each timing every "
        "mode's arch in turn; median.",
        "",
        "| mode | within ±2% (judge) | within ±5% (judge) | median abs miss (judge) | within ±2% (own last "
        "measurement) | measurements | seconds | misses by target (judge, %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in payload["summary"].items():
        errors = ", ".join(f"{100 * e:+.1f}" for e in s["errors"])
        lines.append(
            f"| `{name}` | {s['within_2']}/{s['n']} | {s['within_5']}/{s['n']} | {100 * s['median_abs_error']:.1f}% | "
            f"{s['own_within_2']}/{s['n']} | {s['spent_mean']:.1f} | {s['seconds_mean']:.0f} | {errors} |"
        )
    lines += ["", "Targets (ms): " + ", ".join(f"{t['target_ms']:.3f}" for t in payload["targets"]), ""]
    earlier = payload.get("earlier_judging")
    if earlier:  # the same archs judged before, without the combined mode: how far the machine moved in between
        lines += [
            "The same modes' archs judged once before, right after each target's landings (the last at "
            f"{earlier['date']}); the table above judged them again 5-40 minutes later, interleaved with the "
            "combined mode:",
            "",
            "| mode | within ±2% | within ±5% | median abs miss | misses by target (%) |",
            "|---|---|---|---|---|",
        ]
        for name, e in earlier["summary"].items():
            errors = ", ".join(f"{100 * x:+.1f}" for x in e["errors"])
            lines.append(
                f"| `{name}` | {e['within_2']}/{e['n']} | {e['within_5']}/{e['n']} | "
                f"{100 * e['median_abs_error']:.1f}% | {errors} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", nargs="?", default="all", choices=["all", "render"])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--targets", type=int, default=len(SHARES))
    args = parser.parse_args()
    results = Path(__file__).parent / "results" / "landing.json"
    if args.phase == "render":
        payload = json.loads(results.read_text())
    else:
        store, lut, (low, high) = profiled(args.n)
        shares = np.linspace(SHARES[0], SHARES[-1], args.targets)
        targets = []
        for share in shares:
            targets.append(land_target(round(low + float(share) * (high - low), 3), store, lut))
            print(json.dumps({k: v["judged_error"] for k, v in targets[-1]["modes"].items()}), flush=True)
        payload = {
            "machine": machine(),
            "profile": json.loads((WORK / "profile.json").read_text()),
            "targets": targets,
            "summary": summarise(targets),
        }
    paths = write_results("landing", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

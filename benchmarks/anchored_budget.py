"""Issue 30, figures 2 and 3: does a landed budget hold later, read at the nominal level?

Usage (each phase resumable; state under ``runs/bench_anchored/``):
    python benchmarks/anchored_budget.py land            # profile, fit, search, land (plain and anchored), judge now
    python benchmarks/anchored_budget.py busy            # the anchored loops again with one core kept busy
    python benchmarks/anchored_budget.py tight           # the anchored loops landing within ±1.5%, judged at ±2%
    python benchmarks/anchored_budget.py judge-later     # >= 30 minutes after the landings: judge again
    python benchmarks/anchored_budget.py summarise

Protocol (the fresh-user benchmark of ``lightnas_fresh.py``, anchored): this machine's CPU through ONNX Runtime
(batch 1, one thread, 32 px), ``mbv2-cifar``.

1. ``profile --cover``: 200 archs into a fresh store; every chunk timed beside the space's reference, so the store
   holds each session's level; its nominal level is their median.
2. Two LUTs: on the store's values at the nominal level (anchored) and on the milliseconds as measured (plain).
3. Five targets at 5, 27.5, 50, 72.5, 95% of the profile's range (nominal-level ms); one LightNAS search per target
   (the fresh-user phase's settings, 6 epochs on 1,000 images) on the anchored LUT.
4. Per target, the closed loop (budget 12, tolerance 2%, 3 loads a measurement) twice from the same search: *plain*
   (milliseconds of the moment, the plain LUT and the store's raw rows as prior) and *anchored* (each measurement
   beside the reference, read at the nominal level; the anchored LUT and rows).
5. Judged by separate processes (``edgenas measure --reference --nominal-ms``, 3 processes, median): at once, and
   again >= 30 minutes later; error of the chosen arch to T in nominal-level ms (and, for the record, in ms of the
   moment).
6. ``busy``: the anchored loops again while a process keeps one core busy (a bounded background load), judged the
   same way on a quiet machine.
7. ``tight``: the anchored loops again accepting an arch within ±1.5% (``--tolerance 0.015``), judged at ±2%: a
   landing tighter than the judgement by the noise between separate processes (0.3-0.6% on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results
from lightnas import SEARCH

ROOT = Path("runs/bench_anchored")
N = 200
FRACTIONS = (0.05, 0.275, 0.5, 0.725, 0.95)
TOLERANCE = 0.02
#: The ``tight`` phase's landing tolerance (judged at TOLERANCE).
TIGHT = 0.015
LOOP_BUDGET = 12
LOADS = 3
JUDGES = 3  # separate processes per judgement
LATER_S = 30 * 60
SPACE = "mbv2-cifar"


def _device(anchor=None):
    from edgenas.hardware import RuntimeOptions
    from edgenas.hardware.device import LocalDevice

    return LocalDevice("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1), anchor=anchor)


def _json(path: Path, make):
    """The record at ``path``, made (and saved) when absent."""
    if path.is_file():
        return json.loads(path.read_text())
    record = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def profile() -> dict:
    from edgenas.hardware import MeasurementStore
    from edgenas.search.coverage import profile_covering
    from edgenas.spaces import get_space

    def make() -> dict:
        space, start = get_space(SPACE), time.perf_counter()
        with MeasurementStore(ROOT / "store.db") as db:
            report = profile_covering(space, _device(), db, N, seed=0)
            key = _device().key()
            levels = [r["level_ms"] for r in db.levels(report.device, key)]
            nominal = db.nominal_level(report.device, key)
            reference = db.reference(report.device, key, space.config_hash)
            values = list(db.values(report.device).values())
        return {
            "device": report.device,
            "wall_s": time.perf_counter() - start,
            "sessions": len(levels),
            "levels_ms": levels,
            "nominal_ms": nominal,
            "reference": reference,
            "range_ms": [min(values), max(values)],
        }

    return _json(ROOT / "profile.json", make)


def predictors(record: dict):
    from edgenas.predictors import FitConfig, Predictor, fit_predictor, table_from_store
    from edgenas.spaces import get_space

    space, out = get_space(SPACE), {}
    for mode, raw in (("anchored", False), ("plain", True)):
        path = ROOT / f"lut_{mode}.pt"
        if not path.is_file():
            table = table_from_store(ROOT / "store.db", record["device"], space, raw=raw)
            fit_predictor("lut", table, FitConfig(seed=0)).save(path)
        out[mode] = Predictor.load(path)
    return out


def targets(record: dict) -> list[float]:
    low, high = record["range_ms"]
    return [round(low + f * (high - low), 3) for f in FRACTIONS]


def searched(value: float, predictor, data):
    """The LightNAS search for ``value`` (reused when finished): its arch and logits."""
    from edgenas.search.closed_loop import searched_alpha
    from edgenas.search.lightnas import SearchConfig, Target, search
    from edgenas.spaces import get_space, load_specs

    run = ROOT / f"search_{value:.3f}"
    if not (run / "summary.json").is_file():
        search(get_space(SPACE), [Target(predictor, value)], data, SearchConfig(**SEARCH), run)
    return load_specs(run / "arch.json")[0], searched_alpha(run)


def land_one(value: float, mode: str, record: dict, preds: dict, data, tag: str) -> dict:
    """One closed loop (plain or anchored) from the target's search; its record."""
    from edgenas.hardware import MeasurementStore
    from edgenas.hardware.device import latency_fn
    from edgenas.hardware.reference import Anchor
    from edgenas.search.closed_loop import LoopStore, close_loop
    from edgenas.spaces import get_space

    def make() -> dict:
        space = get_space(SPACE)
        arch, alpha = searched(value, preds["anchored"], data)
        anchored = mode != "plain"
        anchor = Anchor(space.parse(record["reference"]), record["nominal_ms"]) if anchored else None
        with MeasurementStore(ROOT / "store.db") as db:
            rows = db.values(record["device"], raw=not anchored)
        prior = [(space.parse(a), v) for (_, a), v in rows.items()]
        measure = latency_fn(_device(anchor), LOADS)
        start = time.perf_counter()
        loop = close_loop(
            arch,
            alpha,
            preds["anchored" if anchored else "plain"],
            value,
            measure,
            tolerance=TIGHT if tag == "tight" else TOLERANCE,
            budget=LOOP_BUDGET,
            store=LoopStore(prior),
        )
        last = measure.latest[str(loop.chosen)]
        return {
            "target_ms": value,
            "mode": mode,
            "searched": str(arch),
            "chosen": str(loop.chosen),
            "loop_value": loop.value,
            "loop_within": loop.within_tolerance,
            "verdict": loop.verdict,
            "spent": len(loop.measurements),
            "loop_s": time.perf_counter() - start,
            "landed_at": time.time(),
            "levels": last.levels(),
        }

    return _json(ROOT / f"{tag}_{mode}_{value:.3f}.json", make)


def judge(archs: list[str], nominal_ms: float) -> dict[str, dict]:
    """Each arch measured by :data:`JUDGES` separate ``edgenas measure --reference`` processes: the median of its
    nominal-level ms and of its ms of the moment."""
    from edgenas.spaces import get_space, save_specs

    space = get_space(SPACE)
    path = ROOT / "judge.jsonl"
    save_specs(path, [space.parse(a) for a in archs])
    command = [sys.executable, "-m", "edgenas", "measure", str(path), "--reference", "--nominal-ms", str(nominal_ms)]
    runs = []
    for _ in range(JUDGES):
        done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout)["measurements"])
    out = {}
    for i, arch in enumerate(archs):
        out[arch] = {
            "nominal_ms": float(np.median([r[i]["nominal_ms"] for r in runs])),
            "ms_now": float(np.median([r[i]["ms_now"] for r in runs])),
            "level_now_ms": float(np.median([r[i]["level_now_ms"] for r in runs])),
        }
    return out


def _landings(tag: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ROOT.glob(f"{tag}_*.json"))]


def judged(tag: str, when: str, record: dict) -> dict:
    def make() -> dict:
        rows = _landings(tag)
        if when == "later":
            wait = max(r["landed_at"] for r in rows) + LATER_S - time.time()
            if wait > 0:
                raise SystemExit(f"judge-later: {wait / 60:.0f} more minutes to wait after the last landing")
        return {"at": time.time(), "archs": judge(sorted({r["chosen"] for r in rows}), record["nominal_ms"])}

    return _json(ROOT / f"judge_{tag}_{when}.json", make)


def busy_load() -> subprocess.Popen:
    """A process keeping one core busy (single-threaded arithmetic), until killed."""
    code = "import numpy as np\na = np.random.rand(300, 300)\nwhile True:\n    a = (a @ a) / 300.0"
    return subprocess.Popen([sys.executable, "-c", code], env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})


def land(tag: str, modes: tuple[str, ...]) -> None:
    from edgenas.train import load_dataset

    record = profile()
    preds = predictors(record)
    data = load_dataset(None)
    for value in targets(record):
        searched(value, preds["anchored"], data)  # the searches first, with nothing else measuring
    load = busy_load() if tag == "busy" else None
    try:
        for value in targets(record):
            for mode in modes:
                print(json.dumps(land_one(value, mode, record, preds, data, tag)), flush=True)
    finally:
        if load is not None:
            load.kill()
    judged(tag, "now", record)


def summarise() -> None:
    record = json.loads((ROOT / "profile.json").read_text())
    tables, payload = [], {"machine": machine(), "profile": record, "runs": {}}
    for tag in ("loop", "busy", "tight"):
        rows = _landings(tag)
        if not rows:
            continue
        for when in ("now", "later"):
            path = ROOT / f"judge_{tag}_{when}.json"
            if not path.is_file():
                continue
            judged_archs = json.loads(path.read_text())["archs"]
            for r in rows:
                j = judged_archs[r["chosen"]]
                r[f"{when}_error"] = j["nominal_ms"] / r["target_ms"] - 1
                r[f"{when}_error_ms_now"] = j["ms_now"] / r["target_ms"] - 1
                r[f"{when}_level_ms"] = j["level_now_ms"]
        payload["runs"][tag] = rows
        tables.append((tag, rows))
    lines = [
        "# A budget that holds on a drifting device (issue 30)",
        "",
        f"Machine: {payload['machine']['cpu']}, ort-cpu batch 1, 1 thread, 32 px, `{SPACE}`. Profile: {N} archs "
        f"(cover), {record['sessions']} sessions, levels {min(record['levels_ms']):.3f}.."
        f"{max(record['levels_ms']):.3f} ms (nominal {record['nominal_ms']:.3f} ms, "
        f"reference `{record['reference']}`).",
        f"Loop budget {LOOP_BUDGET}, {LOADS} loads a measurement, tolerance ±{TOLERANCE:.0%}; judged by {JUDGES} "
        "separate `edgenas measure --reference` processes (median), at once and >= 30 min later.",
        "",
        "| run | mode | T ms | loop verdict | spent | error at nominal (now) | (later) | "
        "error in ms of the moment (now) | (later) | level now / later ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, rows in tables:
        for r in rows:

            def pct(key: str, r=r) -> str:
                return f"{100 * r[key]:+.1f}%" if key in r else "-"

            lines.append(
                f"| {tag} | {r['mode']} | {r['target_ms']:.3f} | {'met' if r['loop_within'] else 'missed'} | "
                f"{r['spent']} | {pct('now_error')} | {pct('later_error')} | {pct('now_error_ms_now')} | "
                f"{pct('later_error_ms_now')} | {r.get('now_level_ms', float('nan')):.3f} / "
                f"{r.get('later_level_ms', float('nan')):.3f} |"
            )
    lines += ["", "Within ±2% (±1%) of T at the nominal level, per judgement:", ""]
    for tag, rows in tables:
        for mode in sorted({r["mode"] for r in rows}):
            mine = [r for r in rows if r["mode"] == mode]
            for when in ("now", "later"):
                errs = [abs(r[f"{when}_error"]) for r in mine if f"{when}_error" in r]
                if errs:
                    lines.append(
                        f"- {tag} / {mode} / {when}: {sum(e <= 0.02 for e in errs)} of {len(errs)} "
                        f"({sum(e <= 0.01 for e in errs)} within ±1%); median |error| {100 * np.median(errs):.1f}%"
                    )
    write_results("anchored_budget", payload, "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("land", "busy", "tight", "judge-later", "summarise"))
    args = parser.parse_args()
    if args.phase == "land":
        land("loop", ("plain", "anchored"))
    elif args.phase == "busy":
        land("busy", ("anchored",))
    elif args.phase == "tight":
        land("tight", ("anchored",))
    elif args.phase == "judge-later":
        record = profile()
        for tag in ("loop", "busy", "tight"):
            if _landings(tag) and not (ROOT / f"judge_{tag}_later.json").is_file():
                judged(tag, "later", record)
    summarise()


if __name__ == "__main__":
    main()

"""Measure exported ONNX models on a device that cannot run edgenas: ``python runner.py DIR``.

This file is self-contained on purpose: copy it to a Raspberry Pi, a phone-class board or a Jetson with only
``onnxruntime`` and ``numpy`` installed, next to a folder written by ``edgenas profile ... --export DIR``, and run it
there. It applies edgenas' protocol (warm-up runs, timed repeats, the median; a second and third attempt when the
relative inter-quartile range is above the threshold, flagged when it stays there), with ONNX Runtime's CPU provider
at full graph optimisation as ``ort-cpu`` does, and writes ``DIR/results.json`` with the device's fingerprint; bring
that file back and ``edgenas store import DIR/results.json --store S.sqlite`` files the rows under the device.
Models already in an existing ``results.json`` are not measured again (a killed run continues).

Where the manifest names a ``reference`` model, every model is timed round by round with it (model, reference,
model, reference, ...): each row then also carries ``reference_ms`` (the reference's median in the same rounds:
the device's level at that moment) and ``relative`` (the median of the model's time over the reference's, round by
round), which a drift of the device's speed does not move.

Do not import edgenas here: the device does not have it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

MANIFEST = "manifest.json"
RESULTS = "results.json"
#: Version of the manifest and results formats (edgenas refuses other versions).
FORMAT = 1


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_fingerprint() -> dict:
    """The fields edgenas' own fingerprint records for a CPU device (torch absent: it is not needed here)."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "torch": None,
        "gpu": None,
        "gpu_driver": None,
        "onnxruntime": ort.__version__,
        "source": "edgenas runner.py",
    }


def _session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _stats(samples: list) -> dict:
    x = np.asarray(samples, dtype=float)
    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    return {"median_ms": float(q50), "iqr_ms": float(q75 - q25), "mean_ms": float(x.mean()), "min_ms": float(x.min())}


def _timer(path: Path, shape: list, threads: int):
    """A zero-argument function running the model once and returning the elapsed milliseconds."""
    session = _session(path, threads)
    inputs = session.get_inputs()
    feed = {inputs[0].name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)} if inputs else {}

    def run() -> float:
        start = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - start) * 1e3

    return run


def _attempt(run, reference, repeats: int) -> dict:
    """One attempt: ``repeats`` timed runs, each followed by one of the reference where there is one."""
    if reference is None:
        return _stats([run() for _ in range(repeats)])
    pairs = np.asarray([(run(), reference()) for _ in range(repeats)])
    stats = _stats(list(pairs[:, 0]))
    stats.update(reference_ms=float(np.median(pairs[:, 1])), relative=float(np.median(pairs[:, 0] / pairs[:, 1])))
    return stats


def measure_model(path: Path, shape: list, protocol: dict, threads: int, reference: Path | None = None) -> dict:
    """Latency statistics (ms) of one ONNX model under ``protocol`` (warmup, repeats, max_rel_iqr, max_retries);
    with a ``reference`` model, timed round by round beside it (``reference_ms`` and ``relative`` added)."""
    run = _timer(path, shape, threads)
    ref = _timer(reference, shape, threads) if reference is not None else None
    for _ in range(protocol["warmup"]):
        run()
        if ref is not None:
            ref()
    best = None
    attempts = protocol["max_retries"] + 1
    for attempt in range(1, attempts + 1):
        stats = _attempt(run, ref, protocol["repeats"])
        stats.update(n=protocol["repeats"], attempts=attempt, flagged=False)
        rel = stats["iqr_ms"] / stats["median_ms"] if stats["median_ms"] > 0 else float("inf")
        if rel <= protocol["max_rel_iqr"]:
            return stats
        if best is None or rel < best[0]:
            best = (rel, stats)
    return {**best[1], "attempts": attempts, "flagged": True}


def run_folder(folder: Path) -> Path:
    """Measure every model the manifest of ``folder`` lists that ``results.json`` does not hold yet; returns the
    results file (rewritten after each model, so a killed run keeps what it measured)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"{folder / MANIFEST}: format {manifest.get('format')}, this runner reads {FORMAT}")
    out = folder / RESULTS
    results = json.loads(out.read_text()) if out.is_file() else {}
    if results.get("manifest") != manifest["id"]:  # no results yet, or those of another export: start afresh
        results = {"format": FORMAT, "rows": []}
    results.update(fingerprint=device_fingerprint(), runtime=manifest["runtime"], manifest=manifest["id"])
    done = {row["file"] for row in results["rows"]}
    todo = [m for m in manifest["models"] if m["file"] not in done]
    reference = folder / manifest["reference"]["file"] if manifest.get("reference") else None
    for i, model in enumerate(todo, 1):
        stats = measure_model(
            folder / model["file"], manifest["input_shape"], manifest["protocol"], manifest["threads"], reference
        )
        results["rows"].append({"file": model["file"], "arch": model.get("arch"), **stats})
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, out)
        print(f"[{i}/{len(todo)}] {model['file']}: {stats['median_ms']:.3f} ms", file=sys.stderr)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python runner.py DIR   (DIR written by 'edgenas profile ... --export DIR')")
    print(run_folder(Path(sys.argv[1])))

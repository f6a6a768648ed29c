"""Helpers shared by the benchmark scripts: the machine description, writing results (JSON + markdown) and the paired
bootstrap difference."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model and count, OS, Python and library versions, git commit."""
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        rev = commit.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": rev,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def log(*args: object) -> None:
    """A timestamped progress line on stdout (flushed: benchmarks run for hours into log files)."""
    import time

    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def cached_json(folder: Path, name: str, compute: Any) -> Any:
    """``folder/NAME.json`` if a pass wrote it, else ``compute()`` written there (a killed benchmark resumes)."""
    path = folder / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value, indent=1))
    return value


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``results/NAME.json`` and ``results/NAME.md``; return both paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def sample_efficiency(table: Any, specs: list[Any], held_out: int, sizes: tuple[int, ...], log: Any = print):
    """Latency predictors (MLP) fitted on the first n rows of a fixed training part of ``table`` (in the order of
    ``specs``, the profile's order) and scored on its last ``held_out`` specs, for each n of ``sizes``; and one
    fitted on the whole training part (its test scores: the curve's last point). Returns ``(curve, predictor)``."""
    import numpy as np

    from edgenas.predictors import FitConfig, fit_predictor, scores

    order = {str(s): i for i, s in enumerate(specs)}
    rows = sorted(range(len(table)), key=lambda i: order[str(table.specs[i])])
    train_rows, test = rows[:-held_out], table.subset(np.array(rows[-held_out:]))
    curve = []
    for n in sizes:
        predictor = fit_predictor("mlp", table.subset(np.array(train_rows[:n])), FitConfig(seed=0))
        curve.append({**scores(np.asarray(predictor.predict(test.specs), float), test.values), "n_train": n})
        log("latency predictor", curve[-1])
    final = fit_predictor("mlp", table.subset(np.array(train_rows)), FitConfig(seed=0))
    final.meta.scores["test"] = curve[-1]
    return curve, final


#: Bootstrap resamples of the mean paired difference.
BOOTSTRAP = 10_000


def paired_difference(a: list[float], b: list[float], seed: int = 0) -> dict[str, float]:
    """Mean of the paired differences a - b and its 95% bootstrap interval (resampling the pairs)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    if len(diff) < 2:  # one pair: no interval, nothing resolved
        return {"mean": float(diff.mean()), "low": float("nan"), "high": float("nan"), "resolved": False}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (BOOTSTRAP, len(diff)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "resolved": bool(low > 0 or high < 0)}

"""What a search leaves in its run directory besides its checkpoint: ``config.json`` and ``env.json`` (through
:mod:`edgenas.rundir`), ``trajectory.jsonl`` (one record per step), ``arch.json``, ``summary.json`` and the plots
(``trajectory.png``, and ``alpha.png`` for a strategy that records its probabilities)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgenas import rundir
from edgenas._env import environment
from edgenas._io import write_text_atomic
from edgenas.report.search_plots import plot_probabilities, plot_trajectory
from edgenas.search.budget import FeasibleRange, LambdaController
from edgenas.search.config import SearchConfig, SearchResult, Target
from edgenas.search.strategy import get_strategy
from edgenas.search.supernet import Supernet
from edgenas.spaces import SearchSpace, save_specs, spec_to_dict
from edgenas.spaces.spec import thaw
from edgenas.train.data import ImageData

__all__ = ["finish", "read_trajectory", "truncate_trajectory", "update_counts", "write_run_record"]


def write_run_record(
    run: Path,
    space: SearchSpace,
    targets: Sequence[Target],
    data: ImageData,
    config: SearchConfig,
    ranges: dict[str, FeasibleRange],
    split: tuple[int, int],
    device: torch.device,
    *,
    world_size: int = 1,
) -> None:
    """``config.json`` (options, space, targets, feasible ranges, data and split sizes, processes) and ``env.json``."""
    record = {
        "config": asdict(config),
        "world_size": world_size,
        "space": space.name,
        "space_options": {k: thaw(v) for k, v in space.options},
        "targets": [
            {"metric": t.name, "unit": t.unit, "value": t.value, "predictor": t.predictor.meta.kind} for t in targets
        ],
        "feasible": {
            k: {"low": r.low, "high": r.high, "low_arch": str(r.low_spec), "high_arch": str(r.high_spec)}
            for k, r in ranges.items()
        },
        "data": data.describe() | {"w_split": split[0], "alpha_split": split[1]},
    }
    rundir.write_provenance(run, record, {"seed": config.seed, **environment(device)})


def finish(
    run: Path,
    supernet: Supernet,
    targets: Sequence[Target],
    final: list[float],
    controllers: Sequence[LambdaController],
    ranges: dict[str, FeasibleRange],
    config: SearchConfig,
    steps: int,
    seconds: float,
) -> SearchResult:
    """Write ``arch.json`` (the supernet's derived architecture), ``summary.json`` (per target: predicted value,
    error, lambda, range; the per-op update counts of a strategy that records its paths) and the plots."""
    arch, entropy = supernet.derived_spec(), supernet.entropy()
    save_specs(run / "arch.json", [arch])
    summary = {
        "method": config.method,
        "arch": str(arch),
        "arch_spec": spec_to_dict(arch),
        "targets": [
            {
                "metric": t.name,
                "unit": t.unit,
                "target": t.value,
                "predicted": v,
                "predicted_error": None if t.value is None else v / t.value - 1.0,
                "lambda": c.value,
                "feasible_low": ranges[t.name].low,
                "feasible_high": ranges[t.name].high,
            }
            for t, v, c in zip(targets, final, controllers, strict=True)
        ],
        "epochs": config.epochs,
        "steps": steps,
        "wall_s_this_session": seconds,
        "entropy": entropy,
        # the rule ("argmax" | "nonzero"), or the space's most likely valid arch when the rule's is not a network
        "derivation": supernet.derivation
        if arch == supernet.rule_spec()
        else f"most likely valid ({supernet.derivation} not a network)",
    }
    trajectory = read_trajectory(run / "trajectory.jsonl")
    if get_strategy(config.method).records_probabilities:
        summary["update_counts"] = update_counts(trajectory, supernet.space.num_layers, supernet.space.num_ops)
        plot_probabilities(trajectory, supernet.space, run / "alpha.png")
    rundir.write_summary(run, summary)
    plot_trajectory(trajectory, targets, run / "trajectory.png")
    return SearchResult(run, arch, summary, trajectory)


def update_counts(trajectory: list[dict[str, Any]], layers: int, ops: int) -> list[list[int]]:
    """How many times each (layer, op) ran in the weight steps of ``trajectory`` (its records' ``paths``):
    ``layers x ops`` counts, the fairness of the search's training made visible."""
    counts = np.zeros((layers, ops), dtype=np.int64)
    for record in trajectory:
        for path in record.get("paths") or []:
            counts[np.arange(layers), path] += 1
    return counts.tolist()


def read_trajectory(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``trajectory.jsonl``."""
    lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
    return [json.loads(line) for line in lines if line.strip()]


def truncate_trajectory(path: Path, step: int) -> None:
    """Drop records at or after ``step`` (written after the checkpoint a resumed search restarts from)."""
    if path.is_file():
        keep = [r for r in read_trajectory(path) if r["step"] < step]
        write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))

"""What exact resume keeps beside the weights: RNG states (each rank's), the metrics file cut back to the
checkpoint, and the small all-gathers that collect them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgenas._io import write_text_atomic
from edgenas.train.distributed import DistEnv


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # the Python and NumPy states stay in checkpoints for older readers; training does not draw from them
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()


def truncate_metrics(path: Path, global_step: int) -> None:
    """Drop records written after the checkpoint a run resumes from (they will be written again)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("global_step", 0) <= global_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def all_gather_rows(row: list[float], env: DistEnv) -> list[list[float]]:
    """Every rank's ``row`` (a short list of floats), in rank order."""
    if not env.distributed:
        return [list(row)]
    import torch.distributed as dist

    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, list(row))
    return gathered


def all_gather_rng(env: DistEnv) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (each rank resumes its own stream)."""
    state = rng_state()
    if not env.distributed:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in state.items()})
    return gathered

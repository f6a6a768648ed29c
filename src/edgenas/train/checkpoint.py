"""Checkpoints: ``torch.save`` of tensors and plain Python values only, written atomically, loaded with
``weights_only=True`` so that loading a file never runs pickled code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from edgenas._io import atomic_output
from edgenas.errors import CheckpointError


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or holds more than tensors and plain values.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {file}")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, zipfile errors ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load checkpoint {file}: {reason[:200]}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{file} is not an edgenas checkpoint (a {type(payload).__name__}, not a dict)")
    return payload

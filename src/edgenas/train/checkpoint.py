"""Checkpoints: ``torch.save`` of tensors and plain Python values only, written atomically, loaded with
``weights_only=True`` so that loading a file never runs pickled code."""

from __future__ import annotations

import os
import zipfile
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


#: The first bytes of a zip archive (a file written by torch.save since torch 1.6).
ZIP_MAGIC = b"PK\x03\x04"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or holds more than tensors and plain values.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {file}" + (" (a folder)" if file.is_dir() else ""))
    if not zipfile.is_zipfile(file):  # torch.save has written zip archives since torch 1.6
        with file.open("rb") as f:
            starts_as_zip = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
        if starts_as_zip:  # a zip's directory is written last: an archive cut short has none
            raise CheckpointError(
                f"cannot load checkpoint {file}: it is truncated (a torch.save archive cut short, e.g. by a full "
                "disk or an interrupted copy); write or copy it again"
            )
        raise CheckpointError(f"cannot load checkpoint {file}: it is not a file written by torch.save")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, zipfile errors ...
        raise CheckpointError(f"cannot load checkpoint {file}: {first_sentence(exc)}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{file} is not an edgenas checkpoint (a {type(payload).__name__}, not a dict)")
    return payload


#: Longest reason quoted from a library's exception; torch's unpickling errors run to pages.
MAX_REASON_CHARS = 200


def first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's message (whole words, at most :data:`MAX_REASON_CHARS` characters)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    end = text.find(". ")
    if 0 < end < MAX_REASON_CHARS:
        return text[: end + 1]
    if len(text) <= MAX_REASON_CHARS:
        return text
    return text[:MAX_REASON_CHARS].rsplit(" ", 1)[0] + " …"

"""A run directory's record: ``summary.json``, read and written in one place (issue 28: one run record).

Every job that leaves a summary (a search, its refinement and landing, random search, the channel search, Domino)
writes it through :func:`write_summary` or :func:`update_summary`: one JSON layout (indented, sorted keys), written
atomically, so a reader never sees half a file and a killed job leaves the previous record whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgenas._io import write_text_atomic

__all__ = ["SUMMARY_FILE", "read_summary", "update_summary", "write_summary"]

#: The record of a run, in its directory.
SUMMARY_FILE = "summary.json"


def read_summary(run: str | Path) -> dict[str, Any]:
    """``run/summary.json`` as a dict; empty when the run has none yet."""
    path = Path(run) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_summary(run: str | Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Replace ``run/summary.json`` with ``summary`` (atomically); returns it."""
    write_text_atomic(Path(run) / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def update_summary(run: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run/summary.json`` (atomically) and return the whole summary."""
    return write_summary(run, read_summary(run) | fields)

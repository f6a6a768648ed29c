"""A run directory's record, read and written in one place (issue 28: one run record).

- ``summary.json``: what the job found. Every job that leaves one (a search, its refinement and landing, random
  search, the channel search, Domino) writes it through :func:`write_summary` or :func:`update_summary`.
- ``config.json`` and ``env.json``: what it was asked and where it ran (seed, commit, library versions, device
  fingerprint). The search engine, the trainer and ``edgenas run`` write them through :func:`write_provenance`;
  a resumed job compares what it is asked with :func:`read_config`.

One JSON layout (indented, sorted keys), written atomically, so a reader never sees half a file and a killed job
leaves the previous record whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgenas._io import write_text_atomic

__all__ = [
    "CONFIG_FILE",
    "ENV_FILE",
    "SUMMARY_FILE",
    "read_config",
    "read_env",
    "read_summary",
    "update_summary",
    "write_provenance",
    "write_summary",
]

#: The record of a run, in its directory.
SUMMARY_FILE = "summary.json"
#: What the run was asked (resolved options).
CONFIG_FILE = "config.json"
#: Where it ran (seed, commit, library versions, device fingerprint).
ENV_FILE = "env.json"


def _json(value: dict[str, Any]) -> str:
    """The one layout of a run's JSON records (``default=str`` for paths and the like in environment records)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def read_summary(run: str | Path) -> dict[str, Any]:
    """``run/summary.json`` as a dict; empty when the run has none yet."""
    path = Path(run) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_summary(run: str | Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Replace ``run/summary.json`` with ``summary`` (atomically); returns it."""
    write_text_atomic(Path(run) / SUMMARY_FILE, _json(summary))
    return summary


def update_summary(run: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run/summary.json`` (atomically) and return the whole summary."""
    return write_summary(run, read_summary(run) | fields)


def write_provenance(run: str | Path, config: dict[str, Any], environment: dict[str, Any]) -> None:
    """Write ``run/config.json`` (``config``: what the job was asked) and ``run/env.json`` (``environment``: where it
    ran), atomically each."""
    write_text_atomic(Path(run) / CONFIG_FILE, _json(config))
    write_text_atomic(Path(run) / ENV_FILE, _json(environment))


def read_config(run: str | Path) -> dict[str, Any]:
    """``run/config.json`` as a dict; empty when the run has none yet."""
    path = Path(run) / CONFIG_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_env(run: str | Path) -> dict[str, Any]:
    """``run/env.json`` as a dict; empty when the run has none yet."""
    path = Path(run) / ENV_FILE
    return json.loads(path.read_text()) if path.is_file() else {}

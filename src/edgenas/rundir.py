"""A run directory's record, read and written in one place (issue 28: one run record).

- ``summary.json``: what the job found. Every job that leaves one (a search, its refinement and landing, random
  search, the channel search, Domino) writes it through :func:`write_summary` or :func:`update_summary`.
- ``config.json`` and ``env.json``: what it was asked and where it ran (seed, commit, library versions, device
  fingerprint). The search engine, the trainer, the channel search, Domino and ``edgenas run`` write them through
  :func:`write_provenance`; a resumed job compares what it is asked with what the run recorded in one way
  (:func:`differing_options`, :func:`check_resume`): an option added since counts as equal at its default, and a
  refusal names what differs.

One JSON layout (indented, sorted keys), written atomically, so a reader never sees half a file and a killed job
leaves the previous record whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from edgenas._io import write_text_atomic

__all__ = [
    "CONFIG_FILE",
    "ENV_FILE",
    "SUMMARY_FILE",
    "check_resume",
    "differing_options",
    "read_config",
    "read_env",
    "read_summary",
    "resume_mismatch",
    "same_options",
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
#: Differing options a refused resume names (the rest are counted).
MISMATCHES_SHOWN = 4
#: A default that no option has (a field without one).
_UNSET = object()


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


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, dataclasses as dicts): a saved record and a live config then
    compare alike, whether the record came from a JSON file or a pickled checkpoint."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.loads(json.dumps(value, default=str))


def _defaults(cls: type) -> dict[str, Any]:
    """The default of each field of the dataclass ``cls`` that has one."""
    found = {}
    for f in fields(cls):
        if f.default is not MISSING:
            found[f.name] = _plain(f.default)
        elif f.default_factory is not MISSING:
            found[f.name] = _plain(f.default_factory())
    return found


def differing_options(saved: Any, current: Any, keys: Iterable[str] | None = None) -> list[str]:
    """The options of ``current`` (a dataclass; only ``keys`` when given) whose value in ``saved`` (what a run
    recorded) differs. An option added since the run was written counts as equal when ``current`` keeps its
    default, so runs of an older edgenas still resume; a recorded option ``current`` no longer has differs, as does
    every option when ``saved`` is not a record at all."""
    values = _plain(current)
    if not isinstance(saved, Mapping):
        return sorted(values)
    saved, defaults = _plain(dict(saved)), _defaults(type(current))
    names = list(values) if keys is None else list(keys)
    gone = [] if keys is not None else sorted(set(saved) - set(values))
    return gone + [k for k in names if saved.get(k, defaults.get(k, _UNSET)) != values[k]]


def same_options(saved: Any, current: Any, keys: Iterable[str] | None = None) -> bool:
    """Whether ``saved`` records ``current``'s options (:func:`differing_options` finds none)."""
    return not differing_options(saved, current, keys)


def resume_mismatch(saved: Any, current: Any, keys: Iterable[str] | None = None) -> str | None:
    """One line naming what differs between a run's recorded options and ``current`` (at most
    :data:`MISMATCHES_SHOWN` of them), or None when nothing does."""
    differing = differing_options(saved, current, keys)
    if not differing:
        return None
    saved_values, values = _plain(dict(saved)) if isinstance(saved, Mapping) else {}, _plain(current)
    shown = [
        f"{k}={values[k]!r} (the run has {saved_values[k]!r})" if k in saved_values and k in values else k
        for k in differing[:MISMATCHES_SHOWN]
    ]
    more = f" and {len(differing) - MISMATCHES_SHOWN} more" if len(differing) > MISMATCHES_SHOWN else ""
    return ", ".join(shown) + more


def check_resume(run: str | Path, current: Any, error: type[Exception], what: str) -> None:
    """Refuse to continue ``run`` with options other than those its ``config.json`` records under ``config`` (a
    run without one is fresh: nothing to check).

    Raises:
        error: the recorded options differ from ``current``; the message names them.
    """
    saved = read_config(run).get("config")
    mismatch = None if saved is None else resume_mismatch(saved, current)
    if mismatch is not None:
        raise error(
            f"{run} holds a {what} with other options: {mismatch}; resume it with its own or use another folder"
        )

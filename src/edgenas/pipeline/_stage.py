"""The stage interface of ``edgenas run``, its registry and the key that decides whether a stage runs again.

A stage reads parts of the configuration and the records of the stages it needs, works in its own directory
``RUN/stages/NAME-KEY`` and returns a record (plain JSON: its figures and the paths of its outputs, relative to its
directory). The key hashes the configuration sections the stage reads with the keys of the stages it needs, so a
changed training budget changes the training key and every key after it, and nothing before. ``done.json`` is
written last, atomically: a stage whose ``done.json`` exists and whose listed outputs are all present is complete.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgenas._io import write_text_atomic
from edgenas.pipeline.config import RunConfig

#: Bumped when what a stage writes changes shape, so that old stage directories are not reused.
STAGE_FORMAT = 1
#: Hex digits of the key in a stage directory's name.
KEY_DIGITS = 12
DONE_FILE = "done.json"
#: Keys that change no stage's outputs (a warning threshold): left out of every key.
NOT_HASHED = (("device", "max_load"),)
#: Keys added after runs existed, left out of the key at the value that does what runs did before them (so that an
#: older run directory resumes with its stages reused).
HASHED_UNLESS = {("search", "landing"): "correct", ("search", "close_loop"): 12}


class Events:
    """What a run tells its caller (the CLI draws it; the library never prints). Every hook is optional."""

    def stage_start(self, name: str, key: str, reused: bool) -> None:
        """A stage begins (``reused``: its outputs are complete and it is skipped)."""

    def stage_end(self, record: StageRecord) -> None:
        """A stage finished (or was reused)."""

    def progress(self, stage: str, done: int, total: int | None, text: str = "") -> None:
        """Progress inside a stage (``total`` None: unknown)."""

    def warn(self, text: str) -> None:
        """Something the user should know (a busy machine, a missed target and what to change)."""


@dataclass
class StageRecord:
    """A finished stage: its name, key, directory, outputs (``outputs["files"]`` relative paths) and wall time (s)."""

    name: str
    key: str
    dir: Path
    outputs: dict[str, Any]
    seconds: float
    reused: bool = False

    def path(self, name: str) -> Path:
        """The absolute path of the output file ``name``."""
        return self.dir / self.outputs["files"][name]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "dir": self.dir.name, "seconds": self.seconds, **self.outputs}


@dataclass
class StageContext:
    """What a stage's ``run`` gets: the configuration, its directory, the records it needs and the event hooks."""

    config: RunConfig
    run_dir: Path
    dir: Path
    upstream: dict[str, StageRecord]
    events: Events = field(default_factory=Events)

    def progress(self, stage: str) -> Callable[[int, int | None, str], None]:
        return lambda done, total, text="": self.events.progress(stage, done, total, text)


class Stage(ABC):
    """One step of the pipeline.

    Attributes:
        name: the stage's name (its directory prefix and its key in ``run.json``).
        needs: the stages whose records it reads (they run before it and their keys enter its key).
        sections: the configuration sections (or top-level keys) it reads.
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    sections: ClassVar[tuple[str, ...]] = ()

    def key(self, config: RunConfig, upstream: dict[str, StageRecord]) -> str:
        """Hash of what the stage reads: its sections and its upstream keys."""
        resolved = config.to_dict()
        for section, key in NOT_HASHED:
            resolved[section].pop(key)
        for (section, key), value in HASHED_UNLESS.items():
            if resolved[section].get(key) == value:
                resolved[section].pop(key)
        payload = {
            "stage": self.name,
            "format": STAGE_FORMAT,
            "config": {s: resolved[s] for s in self.sections},
            "upstream": {n: upstream[n].key for n in self.needs},
            **self.extra_inputs(config),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def extra_inputs(self, config: RunConfig) -> dict[str, Any]:
        """Inputs beyond whole sections (a stage that reads one key of a section hashes that key alone here)."""
        return {}

    @abstractmethod
    def run(self, ctx: StageContext) -> dict[str, Any]:
        """Do the work in ``ctx.dir`` (resuming what a killed attempt left there) and return the record's outputs,
        with ``files``: output name -> path relative to ``ctx.dir``."""


_STAGES: dict[str, Stage] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: add a stage at the end of the pipeline (stages run in registration order)."""
    if cls.name in _STAGES:
        raise ValueError(f"stage {cls.name!r} is registered twice")
    missing = [n for n in cls.needs if n not in _STAGES]
    if missing:
        raise ValueError(f"stage {cls.name!r} needs {missing}, which are not registered before it")
    _STAGES[cls.name] = cls()
    return cls


def stages() -> list[Stage]:
    """The registered stages in running order."""
    return list(_STAGES.values())


def read_done(stage_dir: Path) -> dict[str, Any] | None:
    """The outputs a complete stage directory records, or None when it is not complete (no ``done.json``, or a
    listed file missing)."""
    done = stage_dir / DONE_FILE
    if not done.is_file():
        return None
    outputs = json.loads(done.read_text())
    if not all((stage_dir / p).exists() for p in outputs.get("files", {}).values()):
        return None
    return outputs


def write_done(stage_dir: Path, outputs: dict[str, Any]) -> None:
    write_text_atomic(stage_dir / DONE_FILE, json.dumps(outputs, indent=2, sort_keys=True) + "\n")

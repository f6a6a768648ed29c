"""``edgenas run``: the registered stages in order, each skipped when its outputs for the same inputs are complete.

The run directory holds ``config.toml`` (the file as given), ``config.json`` (resolved, defaults filled in),
``env.json`` (commit, library versions, device fingerprint), ``run.json`` (the stages: key, directory, wall time,
whether they ran now or were reused), ``stages/NAME-KEY/`` and ``report.html``, rebuilt after every stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas._env import environment
from edgenas._io import write_text_atomic
from edgenas.pipeline._stage import KEY_DIGITS, Events, StageContext, StageRecord, read_done, stages, write_done
from edgenas.pipeline.config import ConfigError, RunConfig
from edgenas.rundir import write_provenance

RUN_FILE = "run.json"
STAGES_DIR = "stages"


@dataclass
class RunResult:
    """A finished run: its directory, the records of its stages (in order) and the report's path."""

    run_dir: Path
    records: dict[str, StageRecord]
    report: Path

    @property
    def ran(self) -> list[str]:
        """Stages that ran now (the others were reused)."""
        return [n for n, r in self.records.items() if not r.reused]


def _prepare(run_dir: Path, config: RunConfig, config_text: str | None, resume: bool) -> None:
    """Create the run directory, or check that ``resume`` allows using the existing one."""
    if (run_dir / RUN_FILE).is_file() and not resume:
        raise ConfigError(f"{run_dir} holds a run already: pass --resume to continue it, or give another -o")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_text is not None:
        write_text_atomic(run_dir / "config.toml", config_text)
    write_provenance(run_dir, config.to_dict(), environment("cpu"))


def _check_data(config: RunConfig) -> None:
    """Refuse a data location that does not exist before anything is written or measured."""
    from edgenas.errors import EdgeNASError
    from edgenas.train.data import resolve_data_root

    try:
        resolve_data_root(config.data.path or None)
    except EdgeNASError as exc:
        raise ConfigError(f"config key 'data.path': {exc}") from exc


def run_pipeline(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    events: Events | None = None,
    config_text: str | None = None,
) -> RunResult:
    """Run every stage of the pipeline into ``run_dir``.

    Args:
        config: the validated configuration.
        run_dir: the run directory (created; an existing run needs ``resume``).
        resume: continue the run in ``run_dir``: stages complete for the same inputs are reused, an interrupted one
            continues from its last checkpoint, a stage whose inputs changed runs again (in a new directory).
        events: progress and warnings (the CLI's display); None = silent.
        config_text: the configuration file's text, kept in the run directory.

    Raises:
        ConfigError: the data location does not exist, or the directory holds a run and ``resume`` is False; any
            stage's error passes through.
    """
    from edgenas.report import write_report

    run_dir, events = Path(run_dir), events or Events()
    _check_data(config)
    _prepare(run_dir, config, config_text, resume)
    write_report(run_dir)  # an interrupted run has a page from the start
    records: dict[str, StageRecord] = {}
    for stage in stages():
        key = stage.key(config, records)
        stage_dir = run_dir / STAGES_DIR / f"{stage.name}-{key[:KEY_DIGITS]}"
        done = read_done(stage_dir)
        events.stage_start(stage.name, key, reused=done is not None)
        if done is None:
            stage_dir.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            outputs = stage.run(StageContext(config, run_dir, stage_dir, records, events))
            done = {**outputs, "seconds": time.perf_counter() - start}
            write_done(stage_dir, done)
            record = StageRecord(stage.name, key, stage_dir, done, done["seconds"])
        else:
            record = StageRecord(stage.name, key, stage_dir, done, done["seconds"], reused=True)
        records[stage.name] = record
        _write_run_file(run_dir, records)
        events.stage_end(record)
        write_report(run_dir)
    return RunResult(run_dir, records, run_dir / "report.html")


def _write_run_file(run_dir: Path, records: dict[str, StageRecord]) -> None:
    """``run.json``: the stages finished so far, in order."""
    previous = read_run(run_dir).get("history", [])
    now = [{"name": r.name, "dir": r.dir.name, "reused": r.reused, "seconds": r.seconds} for r in records.values()]
    payload = {"stages": [r.to_json() for r in records.values()], "history": previous + now[-1:]}
    write_text_atomic(run_dir / RUN_FILE, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a run directory ({} when there is none yet)."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}

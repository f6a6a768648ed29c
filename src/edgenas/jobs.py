"""Jobs: the work of one data-parallel step as a file that every ``torchrun`` rank reads (issue 28: a jobs layer).

A job is a typed record of everything one search or one training needs — the resolved config, not command-line
arguments — saved as JSON (:func:`save_job`) and run by :func:`run_job` in each process (``torchrun -m edgenas job
JOB.json``; ``edgenas run``'s ``search.nproc``/``train.nproc`` > 1 launch it so). The pipeline no longer rebuilds
CLI arguments for torchrun, so a stage on several processes runs with exactly the config it would run with in one
by construction (before, through a command line whose defaults had to agree with the stage's key by key).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgenas._io import write_text_atomic
from edgenas.errors import EdgeNASError

__all__ = ["JOB_KINDS", "SearchJob", "TrainJob", "load_job", "run_job", "save_job"]


@dataclass(frozen=True)
class SearchJob:
    """One supernet search.

    Attributes:
        space: the space's registered name.
        space_options: its options.
        config: the :class:`~edgenas.search.config.SearchConfig`, as a dict.
        targets: per target, ``predictor`` (a predictor file) and ``value`` (T in its unit).
        data: the dataset's path (None: ``EDGENAS_DATA`` or the built-in sample).
        output: the run directory.
        resume: continue the search found in ``output``.
    """

    kind: ClassVar[str] = "search"
    space: str
    space_options: dict[str, Any]
    config: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)
    data: str | None = None
    output: str = ""
    resume: bool = False

    def run(self) -> dict[str, Any]:
        """Search on this process's rank; rank 0's summary (``run_dir`` added), empty on the other ranks."""
        from edgenas.predictors import Predictor
        from edgenas.search.config import SearchConfig, Target
        from edgenas.search.engine import search
        from edgenas.spaces import get_space
        from edgenas.train import load_dataset
        from edgenas.train.distributed import init_distributed, shutdown_distributed

        space = get_space(self.space, **self.space_options)
        config = SearchConfig(**self.config)
        config.check()
        targets = [Target(Predictor.load(t["predictor"]), float(t["value"])) for t in self.targets]
        images = load_dataset(self.data, image_size=space.resolution)
        env = init_distributed(config.device)
        try:
            result = search(space, targets, images, config, Path(self.output), resume=self.resume, dist_env=env)
        finally:
            shutdown_distributed()
        return {"run_dir": self.output, **result.summary} if env.is_main else {}


@dataclass(frozen=True)
class TrainJob:
    """One training of an architecture.

    Attributes:
        arch: a spec file (its first spec is trained).
        config: the :class:`~edgenas.train.TrainConfig`, as a dict.
        data: the dataset's path (None: ``EDGENAS_DATA`` or the built-in sample).
        output: the run directory.
        resume: continue the training found in ``output``.
    """

    kind: ClassVar[str] = "train"
    arch: str
    config: dict[str, Any]
    data: str | None = None
    output: str = ""
    resume: bool = False

    def run(self) -> dict[str, Any]:
        """Train on this process's rank (the same seeded initial weights on every rank); rank 0's final record
        (``run_dir`` added), empty on the other ranks."""
        from edgenas._random import seeded_torch
        from edgenas.spaces import load_specs, space_of
        from edgenas.train import TrainConfig, load_dataset, train
        from edgenas.train.distributed import init_distributed, shutdown_distributed

        spec = load_specs(self.arch)[0]
        space = space_of(spec)
        config = TrainConfig(**self.config)
        config.validate()
        images = load_dataset(self.data, image_size=space.resolution)
        env = init_distributed(config.device)
        with seeded_torch(config.seed):
            model = space.build(spec)
        try:
            result = train(
                model,
                images,
                config,
                self.output,
                spec=spec,
                resume=self.resume,
                dist_env=env,
                input_size=space.resolution,
            )
        finally:
            shutdown_distributed()
        return {"run_dir": self.output, "final": result.final} if env.is_main else {}


#: The kinds of job, by the ``kind`` a job file names.
JOB_KINDS: dict[str, type[SearchJob] | type[TrainJob]] = {SearchJob.kind: SearchJob, TrainJob.kind: TrainJob}


def save_job(job: SearchJob | TrainJob, path: str | Path) -> Path:
    """Write ``job`` to ``path`` (JSON, atomically); returns the path."""
    path = Path(path)
    write_text_atomic(path, json.dumps({"kind": job.kind, **asdict(job)}, indent=2, sort_keys=True) + "\n")
    return path


def load_job(path: str | Path) -> SearchJob | TrainJob:
    """The job in ``path``.

    Raises:
        EdgeNASError: not a job file edgenas wrote (unreadable, another kind, other fields).
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        kind = JOB_KINDS[record.pop("kind")]
        return kind(**record)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise EdgeNASError(f"{path} is not a job file written by edgenas ({type(exc).__name__}: {exc})") from exc


def run_job(path: str | Path) -> dict[str, Any]:
    """Load the job in ``path`` and run it on this process (under torchrun: on this rank)."""
    return load_job(path).run()

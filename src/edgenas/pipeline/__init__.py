"""``edgenas run CONFIG.toml``: profile -> predictor -> search -> channels -> train -> baseline -> compress -> export ->
check, each stage keyed by a hash of its inputs so that a killed or changed run continues where it can (see
:mod:`.runner`).

Stages register in running order; a new stage (the Domino search next) adds a module here."""

from edgenas.pipeline import stages_model  # noqa: F401  (registers every stage, in running order)
from edgenas.pipeline._stage import Events, Stage, StageContext, StageRecord, register_stage, stages
from edgenas.pipeline.config import ConfigError, RunConfig, config_from_dict, describe_keys, load_config
from edgenas.pipeline.runner import RunResult, read_run, run_pipeline

__all__ = [
    "ConfigError",
    "Events",
    "RunConfig",
    "RunResult",
    "Stage",
    "StageContext",
    "StageRecord",
    "config_from_dict",
    "describe_keys",
    "load_config",
    "read_run",
    "register_stage",
    "run_pipeline",
    "stages",
]

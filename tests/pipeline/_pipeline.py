"""A deterministic device and a tiny run configuration for the pipeline tests.

``CostRuntime`` "measures" a network by its multiply-adds (no timing at all), so two runs of the pipeline see the
same latencies and must end with the same figures; ``tiny_config`` is a run a CPU finishes in well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgenas.hardware.runtimes import RUNTIMES, Runtime, Session
from edgenas.nn.costs import count_mult_adds
from edgenas.pipeline import config_from_dict

#: Milliseconds per million multiply-adds and the fixed overhead of a run (ms) on the fake device.
MS_PER_MMAC = 0.01
OVERHEAD_MS = 0.05


class _CostSession(Session):
    def __init__(self, ms: float) -> None:
        self.ms = ms

    def run(self) -> float:
        return self.ms


class CostRuntime(Runtime):
    """A runtime whose every run takes ``OVERHEAD_MS + MS_PER_MMAC * mult-adds / 1e6`` ms."""

    name = "cost-model"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def load(self, model: Any) -> Session:
        return _CostSession(OVERHEAD_MS + MS_PER_MMAC * count_mult_adds(model, self.options.input_shape) / 1e6)


def tiny_raw(**sections: dict[str, Any]) -> dict[str, Any]:
    """The tiny run as parsed TOML, with ``sections`` merged in."""
    raw: dict[str, Any] = {
        "seed": 0,
        "data": {"path": "sample", "subset": 200, "test_subset": 100},
        "space": {"name": "mbv2-cifar", "options": {"width": 0.25}},
        "device": {"runtime": CostRuntime.name, "max_load": 1000.0},
        "budget": {"latency_quantile": 0.3},
        "profile": {"n": 12, "sampling": "uniform", "warmup": 0, "repeats": 3},
        "predictor": {"kind": "lut", "epochs": 30},
        "search": {
            "epochs": 2,
            "warmup_epochs": 1,
            "subset": 200,
            "batch_size": 50,
            "alpha_batch_size": 20,
            "calibrate": 2,
            "close_loop": 4,
            "oneshot_candidates": 6,  # half the profile: what the tests ask of the ranking takes no more
        },
        "train": {"epochs": 2, "batch_size": 50},
        # the width peer measures and builds 11 MobileNetV2s: one test turns it on (test_run_resume.py)
        "baseline": {"n": 1, "epochs": 1, "width": False},
        "compress": {"finetune_epochs": 1, "min_gain": 0.0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def tiny_config(**sections: dict[str, Any]) -> Any:
    return config_from_dict(tiny_raw(**sections))


@pytest.fixture(scope="session", autouse=True)
def cost_runtime():
    """``cost-model`` in the runtime registry while the pipeline tests run (their configs name it)."""
    RUNTIMES[CostRuntime.name] = CostRuntime
    yield CostRuntime
    RUNTIMES.pop(CostRuntime.name, None)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, cost_runtime) -> Path:
    """A tiny run, finished without interruption (its figures are the reference of the resume tests)."""
    from edgenas.pipeline import run_pipeline

    run = tmp_path_factory.mktemp("pipeline") / "reference"
    run_pipeline(tiny_config(), run)
    return run

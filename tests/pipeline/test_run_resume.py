"""A finished run: what it records, what a changed budget re-runs, torchrun stages, targets out of the predictors'
range. Killing a run (SIGKILL inside every stage) and resuming it: ``test_run_killed.py``."""

from __future__ import annotations

import json

import pytest
from _pipeline import tiny_config

from edgenas.pipeline import read_run, run_pipeline

# slow; on one pytest-xdist worker with the other users of the session-scoped `finished_run` (built once there)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("finished-run")]
ORDER = ["profile", "predictor", "search", "channels", "train", "baseline", "compress", "export", "check"]


def _figures(run) -> dict:
    """What a run concluded: the found arch, its prediction and measurement, the training and the final check."""
    stages = {s["name"]: s for s in read_run(run)["stages"]}
    return {
        "profile": stages["profile"]["latency_ms"],
        "arch": stages["search"]["arch"],
        "predicted": stages["search"]["predicted_ms"],
        "measured": stages["search"]["measured"]["median_ms"],
        "train": stages["train"]["final"]["test_top1"],
        "check": {k: stages["check"][k] for k in ("measured_ms", "top1", "met", "model_from", "trained_baseline")},
    }


def test_changed_training_budget_reruns_training_and_what_follows(tmp_path, finished_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    # the baseline and compression re-run as stages but train nothing here: which stages run is the question
    lean = {"train": {"epochs": 1}, "baseline": {"n": 0}, "compress": {"enabled": False}}
    result = run_pipeline(tiny_config(**lean), run, resume=True)
    assert result.ran == ["train", "baseline", "compress", "export", "check"]
    again = run_pipeline(tiny_config(**lean), run, resume=True)
    assert again.ran == []
    target = run_pipeline(tiny_config(**lean, budget={"latency_quantile": 0.6}), run, resume=True)
    assert target.ran == ["search", "channels", "train", "baseline", "compress", "export", "check"]
    quiet = run_pipeline(
        tiny_config(**lean, budget={"latency_quantile": 0.6}, device={"max_load": 0.9}), run, resume=True
    )
    assert quiet.ran == []  # a warning threshold changes no output


def test_existing_run_needs_resume(finished_run):
    from edgenas.pipeline import ConfigError

    with pytest.raises(ConfigError, match="--resume"):
        run_pipeline(tiny_config(), finished_run)


def test_finished_run_records_the_pipeline(finished_run):
    stages = {s["name"]: s for s in read_run(finished_run)["stages"]}
    assert list(stages) == ORDER
    assert stages["profile"]["measured"] == 12
    check = stages["check"]
    # the cost-model device is exact: the check measures what the export's mult-adds say
    from _pipeline import MS_PER_MMAC, OVERHEAD_MS

    assert check["measured_ms"] == pytest.approx(OVERHEAD_MS + MS_PER_MMAC * stages["export"]["mult_adds"] / 1e6)
    assert check["met"] == (check["measured_ms"] <= check["target_ms"] * (1 + check["tolerance"]))
    candidates = json.loads((finished_run / "stages" / stages["search"]["dir"] / "candidates.json").read_text())
    assert len(candidates) == 7 and sum(c["source"] == "search" for c in candidates) == 1
    assert all(0 <= c["oneshot_top1"] <= 100 for c in candidates)
    baseline = stages["baseline"]
    found, random = baseline["rows"]
    assert [r["role"] for r in baseline["rows"]] == ["found", "random"]
    assert found["arch"] == stages["search"]["arch"] != random["arch"]
    # the found arch is trained with the same budget as its peer: its own training run, not the train stage's
    assert baseline["found_top1"] == found["top1"] and baseline["epochs"] == 1


def test_the_baseline_adds_mobilenet_at_the_widest_multiplier_that_meets_the_found_arch(tmp_path, finished_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    result = run_pipeline(tiny_config(baseline={"width": True}), run, resume=True)
    assert result.ran == ["baseline", "check"]
    stages = {s["name"]: s for s in read_run(run)["stages"]}
    baseline = stages["baseline"]
    found, random, width = baseline["rows"]
    assert [r["role"] for r in baseline["rows"]] == ["found", "random", "width"]
    # MobileNetV2 at the widest multiplier whose latency, measured beside the found arch, meets it
    ladder = {float(w): ms for w, ms in width["ladder"].items()}
    assert width["meets"] and width["measured_ms"] == ladder[width["width"]] <= found["measured_ms"]
    assert all(ms > found["measured_ms"] for w, ms in ladder.items() if w > width["width"])
    assert baseline["width_top1"] == width["top1"] and "not resolved" in baseline["verdict"]
    paid = found["top1"] > random["top1"] and found["top1"] > width["top1"]
    assert baseline["verdict"].startswith("The search paid off" if paid else "The search did not pay off")
    assert f"{found['top1']:.1f}%" in baseline["verdict"]


def test_search_and_training_through_torchrun(tmp_path, finished_run):
    """search.nproc / train.nproc = 2 run both data-parallel stages on two Gloo ranks; the rest stays in-process."""
    from dataclasses import asdict

    import torch

    from edgenas.pipeline.stages_search import search_config

    run = tmp_path / "run"
    config = tiny_config(
        search={"nproc": 2, "device": "cpu"},
        train={"nproc": 2, "device": "cpu"},
        baseline={"n": 0},  # in-process stages, run by the reference run already
        compress={"enabled": False},
    )
    result = run_pipeline(config, run)
    stages = {s["name"]: s for s in read_run(run)["stages"]}
    train_dir = run / "stages" / stages["train"]["dir"] / "run"
    assert torch.load(train_dir / "checkpoints" / "last.pt", weights_only=True)["world_size"] == 2
    assert stages["train"]["processes"] == stages["search"]["processes"] == 2
    search_dir = run / "stages" / stages["search"]["dir"] / "search"
    recorded = json.loads((search_dir / "config.json").read_text())
    assert recorded["world_size"] == 2
    # the ranks ran the job file's config, which is the one-process search's (not CLI defaults)
    assert recorded["config"] == json.loads(json.dumps(asdict(search_config(config))))
    assert 0 <= stages["train"]["final"]["test_top1"] <= 100
    assert result.records["check"].outputs["model_from"] == "train"
    # the same profile and predictor as the one-process run: only the search and what follows ran differently
    reference = {s["name"]: s for s in read_run(finished_run)["stages"]}
    assert stages["predictor"]["dir"] == reference["predictor"]["dir"]


def test_targets_outside_the_predictors_range(finished_run):
    """A target from a quantile of the profile moves inside the predictor's range; one set in ms stops the run."""
    from edgenas.pipeline import ConfigError
    from edgenas.pipeline.stages_measure import run_space
    from edgenas.pipeline.stages_search import RANGE_MARGIN, feasible_target
    from edgenas.predictors import Predictor
    from edgenas.search.budget import feasible_range

    stages = {s["name"]: s for s in read_run(finished_run)["stages"]}
    predictor = Predictor.load(finished_run / "stages" / stages["predictor"]["dir"] / "predictor.pt")
    space = run_space(tiny_config())
    reach = feasible_range(predictor, space)
    inside = (reach.low + reach.high) / 2
    assert feasible_target(tiny_config(), space, predictor, inside).value == inside
    low = feasible_target(tiny_config(), space, predictor, reach.low / 2).value
    assert low == pytest.approx(reach.low * (1 + RANGE_MARGIN), rel=1e-3)
    high = feasible_target(tiny_config(), space, predictor, reach.high * 2).value
    assert high == pytest.approx(reach.high * (1 - RANGE_MARGIN), rel=1e-3)
    with pytest.raises(ConfigError, match=r"'budget\.latency_ms'"):
        feasible_target(tiny_config(budget={"latency_ms": reach.low / 2}), space, predictor, reach.low / 2)

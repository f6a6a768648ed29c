"""The optional channel stage of ``edgenas run``: enabling it re-runs only it and what follows, the trained network is
its refined configuration within T, and the report shows its Fig 4.9 view."""

from __future__ import annotations

import json
import shutil

import pytest
from _pipeline import tiny_config

from edgenas.pipeline import read_run, run_pipeline
from edgenas.spaces import load_specs, space_of

# slow; on one pytest-xdist worker with the other users of the session-scoped `finished_run` (built once there)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("finished-run")]
TINY_CHANNELS = {
    "enabled": True,
    "profile_n": 14,
    "population": 3,
    "iterations": 2,
    "top_k": 1,
    "images": 16,
    "batch_size": 8,
    "epochs": 2,
}


def test_channel_stage_refines_the_trained_network_within_the_target(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    # a generous T, which the found arch meets: the channel search has room to widen layers
    # the baseline and compression run on what the channel stage hands on, as other tests show: off here
    config = tiny_config(
        channels=TINY_CHANNELS,
        budget={"latency_quantile": 0.9},
        baseline={"n": 0},
        compress={"enabled": False},
    )
    result = run_pipeline(config, run, resume=True)
    assert result.ran == ["search", "channels", "train", "baseline", "compress", "export", "check"]
    stages = {s["name"]: s for s in read_run(run)["stages"]}
    channels = stages["channels"]
    assert channels["applied"] and channels["base_arch"] == stages["search"]["arch"]
    assert channels["found"]["predicted_ms"] <= channels["target_ms"] == stages["search"]["target_ms"]
    assert channels["found"]["measured_ms"] > 0 and channels["candidates"] >= 3
    assert 1 <= channels["landing"]["spent"] <= 12 and channels["landing"]["verdict"]
    (trained,) = load_specs(run / "stages" / stages["channels"]["dir"] / "arch.json")
    assert str(trained) == channels["arch"] and space_of(trained).name == "channels"
    recipe = json.loads((run / "stages" / stages["train"]["dir"] / "run" / "config.json").read_text())
    assert recipe["arch"]["space"] == "channels"
    assert stages["check"]["predicted_ms"] == channels["found"]["predicted_ms"]
    page = (run / "report.html").read_text()
    assert "Channel search (LightNets++)" in page and 'data-figure="channels"' in page


def test_domino_compression_stage_reports_its_mask_and_speed_up(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    domino = {
        "method": "domino",
        "latency_masks": 10,
        "proxy_masks": 20,
        "target_masks": 2,
        "proxy_epochs": 1,
        "proxy_images": 20,
        "proxy_resolution": 8,
        "target_ms": 100.0,
    }
    result = run_pipeline(tiny_config(compress=domino), run, resume=True)
    assert result.ran == ["compress", "export", "check"]
    stages = {s["name"]: s for s in read_run(run)["stages"]}
    c = stages["compress"]
    assert c["method"] == "domino" and len(c["mask"]) == c["blocks"] and c["predicted_ms"] <= 100.0
    assert c["landing"]["within_tolerance"] and c["searched_mask"] == c["mask"]  # T far above: kept as searched
    assert c["speedup"] == pytest.approx(c["latency_before_ms"] / c["latency_after_ms"])
    summary = json.loads((run / "stages" / c["dir"] / "domino" / "summary.json").read_text())
    assert summary["mask"] == c["mask"] and summary["pairs"] == {"proxy": 20, "target": 2}
    page = (run / "report.html").read_text()
    assert f"<code>{c['mask']}</code>" in page and f"{c['speedup']:.2f}x" in page

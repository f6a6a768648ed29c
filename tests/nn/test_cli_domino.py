"""`edgenas train` of model references (graft files, distillation) and `edgenas compress domino` end to end on a tiny
network and the shipped sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli as run
from edgenas.export import run_onnx
from edgenas.models import graft_loaded, load_model, save_model_file
from edgenas.nn import graftable_blocks
from edgenas.spaces import get_space, save_specs
from edgenas.train import TrainCallback, TrainConfig, load_checkpoint, load_cifar10, train

TRAIN_ARGS = ["--epochs", "2", "--subset", "40", "--test-subset", "20", "--batch-size", "10", "--data", "sample"]


@pytest.fixture(scope="module")
def graft_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graft")
    space = get_space("mbv2-cifar", width=0.25, resolution=16)
    save_specs(folder / "net.json", space.sample(seed=0))
    loaded = load_model(folder / "net.json")
    n = len(graftable_blocks(loaded.model))
    graft_loaded(loaded, "0" * (n // 2) + "1" * (n - n // 2))
    return save_model_file(folder / "g.pt", loaded), folder / "net.json"


class Crash(TrainCallback):
    def on_step_end(self, info):
        if info["global_step"] == 5:
            raise KeyboardInterrupt


def test_train_of_a_graft_file_resumes_exactly(tmp_path, capsys, graft_file) -> None:
    path, _ = graft_file
    code, _, stderr = run(["train", str(path), "-o", str(tmp_path / "straight"), *TRAIN_ARGS], capsys)
    assert code == 0, stderr
    loaded = load_model(path)  # the same start the CLI takes: the file's weights and recipe
    config = TrainConfig(epochs=2, batch_size=10, train_subset=40, test_subset=20, seed=0)
    with pytest.raises(KeyboardInterrupt):
        train(
            loaded.model,
            load_cifar10("sample"),
            config,
            tmp_path / "resumed",
            recipe=loaded.recipe,
            input_size=loaded.resolution,
            callbacks=[Crash()],
        )
    code, _, stderr = run(["train", str(path), "-o", str(tmp_path / "resumed"), *TRAIN_ARGS, "--resume"], capsys)
    assert code == 0, stderr
    a = load_checkpoint(tmp_path / "straight" / "model.pt")
    b = load_checkpoint(tmp_path / "resumed" / "model.pt")
    assert a["recipe"] == b["recipe"] == loaded.recipe
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # the run is a model reference: eval reads it, and its collapsed form scores the same
    code, stdout, _ = run(
        ["eval", str(tmp_path / "resumed"), "--data", "sample", "--test-subset", "20", "--json"], capsys
    )
    plain = json.loads(stdout)
    code, stdout, _ = run(
        ["eval", str(tmp_path / "resumed"), "--data", "sample", "--test-subset", "20", "--collapse", "--json"], capsys
    )
    collapsed = json.loads(stdout)
    assert code == 0 and "grafted" in plain["arch"] and collapsed["collapsed"]
    assert collapsed["top1"] == plain["top1"] and collapsed["loss"] == pytest.approx(plain["loss"], rel=1e-4)


def test_distillation_changes_training_and_is_recorded(tmp_path, capsys, graft_file) -> None:
    path, spec_file = graft_file
    code, _, stderr = run(["train", str(spec_file), "-o", str(tmp_path / "teacher"), *TRAIN_ARGS], capsys)
    assert code == 0, stderr
    for name, extra in (("plain", []), ("kd", ["--teacher", str(tmp_path / "teacher"), "--distill-weight", "0.9"])):
        code, _, stderr = run(["train", str(path), "-o", str(tmp_path / name), *TRAIN_ARGS, *extra], capsys)
        assert code == 0, stderr
    assert json.loads((tmp_path / "kd" / "config.json").read_text())["distilled"] is True
    a = load_checkpoint(tmp_path / "plain" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "kd" / "model.pt")["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    code, _, stderr = run(["train", str(path), "-o", str(tmp_path / "x"), *TRAIN_ARGS, "--teacher", "nothing"], capsys)
    assert code == 2 and "no model" in stderr and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_compress_domino_end_to_end(tmp_path, capsys, graft_file) -> None:
    """From a trained run (issue 31: Domino compresses a trained network; its pairs are fine-tuned from it), killed
    nowhere but resumed at the end: nothing is trained or measured again."""
    _, spec_file = graft_file
    code, _, stderr = run(["train", str(spec_file), "-o", str(tmp_path / "start"), *TRAIN_ARGS], capsys)
    assert code == 0, stderr
    args = [
        "compress", "domino", "--model", str(tmp_path / "start"), "--target-ms", "1000", "-o", str(tmp_path / "d"),
        "--data", "sample", "--latency-masks", "10", "--proxy-masks", "20", "--target-masks", "3",
        "--proxy-epochs", "2", "--proxy-images", "20", "--proxy-resolution", "8", "--epochs", "1", "--images", "20",
        "--test-images", "20", "--batch-size", "10", "--population", "4", "--iterations", "2", "--top-k", "2",
        "--warmup", "1", "--repeats", "3", "--calibration-masks", "1", "--loads", "1", "--json",
    ]  # fmt: skip
    code, stdout, stderr = run(args, capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["method"] == "domino" and summary["met"] and summary["predicted_ms"] <= 1000
    assert len(summary["mask"]) == summary["mask_space"]["num_layers"] and summary["pairs"] == {
        "proxy": 20,
        "target": 3,
    }
    assert summary["measured_ms"] > 0 and summary["speedup"] > 0 and 0 <= summary["top1_after"] <= 100
    # T far above: the landing measures the searched mask, confirms it once and keeps it
    assert summary["landing"]["within_tolerance"] and summary["landing"]["spent"] == 2
    assert summary["searched_mask"] == summary["mask"]
    # the exported collapsed network computes what the trained grafted model computes
    grafted = load_model(tmp_path / "d" / "model.pt")
    assert grafted.recipe["graft"][0]["mask"] == summary["mask"]
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = grafted.model.eval()(torch.from_numpy(x)).numpy()
    assert np.allclose(run_onnx(tmp_path / "d" / "model.onnx", x), expected, rtol=1e-3, atol=1e-4)
    assert {json.loads(line)["task"] for line in (tmp_path / "d" / "pairs.jsonl").read_text().splitlines()} == {
        "proxy",
        "target-finetuned",
    }
    # the verdict is the ratio to the ungrafted net in one session, and T is read at the calibration's level
    calibration = summary["calibration"]
    assert summary["ungrafted_ms"] == calibration["level_ms"] and len(calibration["masks"]) == 3
    assert summary["measured_ms"] == pytest.approx(summary["ratio"] * summary["ungrafted_ms"])
    assert summary["target_ratio"] == pytest.approx(1000 / summary["ungrafted_ms"])
    # resumed with the same -o: no pair is trained again, the same mask comes out
    pairs = (tmp_path / "d" / "pairs.jsonl").read_text()
    code, stdout, stderr = run(args, capsys)
    assert code == 0, stderr
    again = json.loads(stdout)
    assert again["mask"] == summary["mask"] and (tmp_path / "d" / "pairs.jsonl").read_text() == pairs
    assert again["calibration"] == calibration  # the level T is read at is the first session's


def test_the_searched_mask_is_landed_on_t_measured_and_kept_for_a_resumed_run(tmp_path, graft_file) -> None:
    """Domino's calibration and landing: on a device 25% slower than its latency predictor the calibration rescales
    the predictor by 1.25; T (read at the calibration's level) is below the ungrafted net, so the closed loop grafts a
    few blocks until the measured latency is at most T + 2%, and a resumed run reads the landed mask (and the
    calibration) back instead of measuring again."""
    from edgenas.compress.domino import predicted_latency
    from edgenas.compress.domino_job import LANDING_FILE, DominoJob, DominoRun
    from edgenas.compress.domino_session import calibrated
    from edgenas.errors import DominoError
    from edgenas.hardware.device import SimulatedDevice
    from edgenas.predictors import ArchTable, FitConfig, fit_predictor
    from edgenas.spaces.domino import mask_space

    _, spec_file = graft_file
    loaded = load_model(spec_file)
    space = mask_space(loaded.recipe)

    def clean(spec) -> float:  # a kept block costs 0.1 ms more than a grafted one, later blocks a little more
        return 1.0 + sum(0.1 + 0.01 * i for i, keep in enumerate(spec.choices) if keep == 1)

    specs = space.sample(seed=0, n=60)
    table = ArchTable(space, specs, np.array([clean(s) for s in specs]), "latency_ms", "toy")
    latency = predicted_latency(fit_predictor("lut", table, FitConfig()), space)
    calls = []
    device = SimulatedDevice(lambda spec: calls.append(spec) or 1.25 * clean(spec))
    start = space.keep_all()
    target = clean(start)
    run = DominoRun(loaded, load_cifar10("sample"), tmp_path, DominoJob(target_ms=target), device)
    session = run.calibrate(latency)
    assert session.factor == pytest.approx(1.25, rel=0.02) and session.level_ms == pytest.approx(1.25 * target)
    latency = calibrated(latency, space, session.factor)
    assert run.calibrate(latency) == session  # read back, not measured again
    chosen, record = run.land(start, latency, session)
    assert record["landing"]["within_tolerance"] and 1.25 * clean(chosen) <= target * 1.02
    assert record["searched_mask"] == space.format(start) and 1 <= chosen.choices.count(0) <= len(chosen.choices) // 2
    measured = len(calls)
    again, _ = run.land(start, latency, session)
    assert again == chosen and len(calls) == measured and (tmp_path / LANDING_FILE).is_file()
    with pytest.raises(DominoError, match="another mask"):
        run.land(space.graft_all(), latency, session)

"""The trainer: exact resume, learning-rate schedule, NaN detection, checkpoint errors, run directory contents."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from edgenas.errors import CheckpointError, NonFiniteLossError, TrainConfigError
from edgenas.spaces import get_space
from edgenas.train import TrainCallback, TrainConfig, evaluate, load_checkpoint, load_cifar10, train
from edgenas.train.steps import lr_factor, topk_correct

SPACE = {"channels": 4, "cells_per_stage": 1}


@pytest.fixture(scope="module")
def data():
    return load_cifar10("sample")


def tiny_model(seed=0):
    space = get_space("nb201", **SPACE)
    spec = space.parse(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
    )
    torch.manual_seed(seed)
    return space.build(spec), spec


def config(**overrides):
    base = dict(
        epochs=2,
        batch_size=16,
        lr=0.05,
        train_subset=64,
        test_subset=20,
        deterministic=True,
        log_every=1,
        warmup_epochs=0.5,
        label_smoothing=0.1,
        grad_clip=5.0,
        nesterov=True,
    )
    base.update(overrides)
    return TrainConfig(**base)


class Crash(TrainCallback):
    """Simulates the process being killed after a given step (nothing after it runs)."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, info):
        if info["global_step"] == self.at_step:
            raise KeyboardInterrupt


def records(run_dir, kind):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")} for r in rows if r["kind"] == kind
    ]


@pytest.mark.parametrize(("checkpoint_every", "crash_at"), [(0, 6), (1, 6)], ids=["epoch-boundary", "mid-epoch"])
def test_resume_gives_identical_weights(tmp_path, data, checkpoint_every, crash_at):
    model, spec = tiny_model()
    straight = train(model, data, config(checkpoint_every=checkpoint_every), tmp_path / "straight", spec=spec)

    model, spec = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            data,
            config(checkpoint_every=checkpoint_every),
            tmp_path / "resumed",
            spec=spec,
            callbacks=[Crash(crash_at)],
        )
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert saved["state"]["global_step"] == (4 if checkpoint_every == 0 else crash_at - 1)

    model, spec = tiny_model(seed=123)  # different init: everything must come from the checkpoint
    resumed = train(
        model, data, config(checkpoint_every=checkpoint_every), tmp_path / "resumed", spec=spec, resume=True
    )

    a = load_checkpoint(tmp_path / "straight" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "model.pt")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "straight", "step") == records(tmp_path / "resumed", "step")  # no duplicated steps
    assert records(tmp_path / "straight", "epoch") == records(tmp_path / "resumed", "epoch")
    assert straight.final["test_top1"] == resumed.final["test_top1"]
    # a resumed epoch reports the whole epoch: its time includes the part before the crash, its rate all 64 images
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    for row in (r for r in rows if r["kind"] == "epoch"):
        assert row["images_per_s"] * row["epoch_time_s"] == pytest.approx(64, rel=0.02)
    if checkpoint_every:
        assert saved["state"]["epoch_images"] == 16 and saved["state"]["epoch_elapsed_s"] > 0
        assert rows[-1]["epoch_time_s"] >= saved["state"]["epoch_elapsed_s"]


def test_run_directory_and_eval_agree(tmp_path, data):
    model, spec = tiny_model()
    result = train(model, data, config(epochs=1, deterministic=False), tmp_path / "run", spec=spec)
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    env = json.loads((run / "env.json").read_text())
    assert cfg["train"]["batch_size"] == 16 and cfg["arch"]["arch"] == str(spec) and cfg["steps_per_epoch"] == 4
    assert env["seed"] == 0 and env["versions"]["torch"] and env["device"]["cpu_count"] >= 1 and env["git_commit"]
    steps = records(run, "step")
    assert [s["global_step"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["lr"] == pytest.approx(0.05 * lr_factor(1, 4, 2))
    rebuilt, _ = tiny_model(seed=9)
    rebuilt.load_state_dict(load_checkpoint(run / "model.pt")["model"])
    from edgenas.train import balanced_subset

    again = evaluate(rebuilt, data, subset=balanced_subset(data.test_labels, 20, seed=0))
    assert again["top1"] == pytest.approx(result.final["test_top1"])
    assert again["loss"] == pytest.approx(result.final["test_loss"], rel=1e-5)


def test_lr_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 10) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[55] == pytest.approx(0.5) and factors[100] == pytest.approx(0.0)


def test_topk_correct():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    assert topk_correct(logits, torch.tensor([1, 2, 0]), ks=(1, 2, 5)) == [1, 2, 3]


class Explodes(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x.mean((2, 3)))
        return out * float("nan") if self.calls == 3 else out


def test_nan_loss_stops_with_the_step(tmp_path, data):
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 1, batch 3\)"):
        train(Explodes(), data, config(deterministic=False), tmp_path / "nan")


class NaNGradients(nn.Module):
    """Finite loss, but every update writes NaN into the weights: only the epoch-end check can see it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)
        self.fc.weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def test_nan_weights_after_the_last_step_stop_the_run(tmp_path, data):
    one_step = config(epochs=1, train_subset=16, grad_clip=0.0, deterministic=False)
    with pytest.raises(NonFiniteLossError, match=r"weights \(fc.weight\) became NaN or infinite by step 1"):
        train(NaNGradients(), data, one_step, tmp_path / "nan")
    assert not (tmp_path / "nan" / "model.pt").exists()


def test_non_finite_options_are_refused():
    for field_name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "grad_clip"):
        with pytest.raises(TrainConfigError, match="must be finite"):
            config(**{field_name: float("nan")}).validate()


def test_checkpoint_errors(tmp_path, data):
    model, spec = tiny_model()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(model, data, config(epochs=1), tmp_path / "fresh", spec=spec, resume=True)
    train(model, data, config(epochs=1, deterministic=False), tmp_path / "done", spec=spec)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(model, data, config(epochs=1), tmp_path / "done", spec=spec)
    with pytest.raises(CheckpointError, match="batch_size"):
        train(model, data, config(epochs=1, batch_size=32), tmp_path / "done", spec=spec, resume=True)
    last = tmp_path / "done" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as after a full disk
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        train(model, data, config(epochs=1), tmp_path / "done", spec=spec, resume=True)


def test_bad_options(tmp_path, data):
    model, spec = tiny_model()
    with pytest.raises(TrainConfigError, match="fp16 needs a CUDA"):
        train(model, data, config(amp="fp16", device="cpu"), tmp_path / "x", spec=spec)
    with pytest.raises(TrainConfigError, match="amp must be"):
        train(model, data, config(amp="int8"), tmp_path / "x", spec=spec)
    with pytest.raises(TrainConfigError, match="exceeds"):
        train(model, data, config(batch_size=128), tmp_path / "x", spec=spec)


def test_bf16_autocast_on_cpu_trains(tmp_path, data):
    model, spec = tiny_model()
    result = train(model, data, config(epochs=1, amp="bf16", deterministic=False), tmp_path / "bf16", spec=spec)
    assert 0 < result.final["train_loss"] < 10

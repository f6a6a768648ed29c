"""The training stages: train the found net, and train it again beside random archs of the same measured latency
on the same short budget (the same-budget baseline)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from edgenas._random import seeded_torch
from edgenas.pipeline import stages_channels  # noqa: F401  (its stages run before these: register them first)
from edgenas.pipeline._stage import Stage, StageContext, register_stage
from edgenas.pipeline.config import RunConfig
from edgenas.pipeline.stages_measure import run_images, run_space
from edgenas.spaces import load_specs, space_of
from edgenas.train import TrainCallback, TrainConfig, train

TRAIN_DIR = "run"


class _StageProgress(TrainCallback):
    """The trainer's steps as the stage's progress."""

    def __init__(self, ctx: StageContext, stage: str) -> None:
        self.report, self.total = ctx.progress(stage), None

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.total = info["epochs"] * info["steps_per_epoch"]

    def on_step_end(self, info: dict[str, Any]) -> None:
        self.report(info["global_step"], self.total, f"epoch {info['epoch']} loss {info['loss']:.3f}")


def train_config(config: RunConfig, epochs: int, lr: float) -> TrainConfig:
    t = config.train
    return TrainConfig(
        epochs=epochs,
        batch_size=t.batch_size,
        lr=lr,
        weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing,
        amp=t.amp,
        seed=config.seed,
        device=t.device,
        train_subset=config.data.subset or None,
        test_subset=config.data.test_subset or None,
        log_every=0,
    )


def train_in_stage(
    ctx: StageContext, model: Any, tconfig: TrainConfig, folder: str, spec: Any, stage: str, images: Any = None
) -> dict[str, Any]:
    """Train ``model`` in ``ctx.dir / folder``, resuming a checkpoint a killed attempt left; the final record
    (``images``: the run's dataset when the caller has it loaded already)."""
    space = run_space(ctx.config)
    images = images if images is not None else run_images(ctx.config)
    run = ctx.dir / folder
    resume = (run / "checkpoints" / "last.pt").is_file()
    result = train(
        model,
        images,
        tconfig,
        run,
        spec=spec,
        resume=resume,
        callbacks=[_StageProgress(ctx, stage)],
        input_size=space.resolution,
    )
    return {**result.final, "chance_top1": 100.0 / images.num_classes}


@register_stage
class TrainStage(Stage):
    """Train the found network (after the channel stage: its refined configuration) with the ``train`` budget."""

    name = "train"
    needs = ("channels",)
    sections = ("space", "data", "train", "seed")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        spec = load_specs(ctx.upstream["channels"].path("arch"))[0]
        tconfig = train_config(ctx.config, ctx.config.train.epochs, ctx.config.train.lr)
        if ctx.config.train.nproc > 1:
            final = self._torchrun(ctx, tconfig)
        else:
            with seeded_torch(ctx.config.seed):
                model = space_of(spec).build(spec)
            final = train_in_stage(ctx, model, tconfig, TRAIN_DIR, spec, "train")
        return {
            "files": {"model": f"{TRAIN_DIR}/model.pt", "metrics": f"{TRAIN_DIR}/metrics.jsonl"},
            "final": final,
            "epochs": ctx.config.train.epochs,
            "processes": ctx.config.train.nproc,
        }

    @staticmethod
    def _torchrun(ctx: StageContext, t: TrainConfig) -> dict[str, Any]:
        """Training on ``train.nproc`` processes (data-parallel; resumes a killed attempt): a job file
        (:class:`edgenas.jobs.TrainJob`: this config) that ``torchrun -m edgenas job`` runs on every rank."""
        from edgenas.jobs import TrainJob, save_job
        from edgenas.pipeline._launch import launch

        run = ctx.dir / TRAIN_DIR
        resume = (run / "checkpoints" / "last.pt").is_file()
        arch = ctx.upstream["channels"].path("arch")
        job = TrainJob(str(arch), asdict(t), ctx.config.data.path or None, str(run), resume)
        ctx.events.progress("train", 0, None, f"torchrun on {ctx.config.train.nproc} processes")
        final = launch(ctx.config.train.nproc, ["job", str(save_job(job, ctx.dir / "train_job.json"))])["final"]
        classes = dict(run_space(ctx.config).options).get("num_classes") or run_images(ctx.config).num_classes
        return {**final, "chance_top1": 100.0 / classes}

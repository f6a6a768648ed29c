"""The deployment stages: compress the trained net where compression pays on the device, export it to ONNX and check
the deployed model against the budget."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgenas._io import write_text_atomic
from edgenas.pipeline import stages_baseline  # noqa: F401  (its stages run before these: register them first)
from edgenas.pipeline._device import contention_warning, measure_models, run_anchor
from edgenas.pipeline._stage import Stage, StageContext, StageRecord, register_stage
from edgenas.pipeline.stages_measure import run_images, run_space
from edgenas.pipeline.stages_train import train_config, train_in_stage
from edgenas.train import evaluate

GAINS_FILE = "block_gains.json"
COMPRESSED_FILE = "compressed.pt"


@register_stage
class CompressStage(Stage):
    """Graft (then collapse) the blocks ``compress.method`` chooses — ``blocks``: those whose collapse alone saves
    ``compress.min_gain`` of the measured latency; ``domino``: Domino's mask search under the target —, fine-tune the
    grafted net, and keep it only when it is faster and loses at most ``compress.max_accuracy_drop`` points."""

    name = "compress"
    needs = ("search", "train")
    sections = ("space", "data", "train", "compress", "device", "profile", "seed")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        c = ctx.config.compress
        if not c.enabled:
            return {"files": {}, "applied": False, "reason": "compress.enabled is false"}
        return COMPRESS_METHODS[c.method](self, ctx)

    def _per_block(self, ctx: StageContext) -> dict[str, Any]:
        from edgenas.models import graft_loaded, load_model, save_model_file
        from edgenas.nn import graftable_blocks

        c = ctx.config.compress
        trained = ctx.upstream["train"]
        loaded = load_model(trained.path("model"))
        gains = self._block_gains(ctx, loaded)
        paying = [i for i, g in enumerate(gains["gains"]) if g >= c.min_gain]
        base = {
            "gains": gains,
            "paying_blocks": paying,
            "blocks": len(graftable_blocks(loaded.model)),
            "min_gain": c.min_gain,
        }
        if not paying:
            best = max(gains["gains"]) if gains["gains"] else 0.0
            return {
                "files": {},
                "applied": False,
                **base,
                "reason": f"no block's collapse saves {c.min_gain:.0%} on this device (best {best:+.1%})",
            }
        mask = "".join("0" if i in paying else "1" for i in range(base["blocks"]))
        graft_loaded(loaded, mask)
        final = (
            train_in_stage(
                ctx,
                loaded.model,
                train_config(ctx.config, c.finetune_epochs, c.finetune_lr),
                "finetune",
                None,
                "compress",
            )
            if c.finetune_epochs
            else self._evaluate(ctx, loaded.model)
        )
        save_model_file(ctx.dir / COMPRESSED_FILE, loaded)
        before, after = self._latencies(ctx, trained, loaded)
        drop = trained.outputs["final"]["test_top1"] - final["test_top1"]
        applied, reason = _verdict(before, after, drop, c.max_accuracy_drop)
        return {
            "files": {"model": COMPRESSED_FILE},
            "applied": applied,
            "reason": reason,
            "mask": mask,
            **base,
            "top1_before": trained.outputs["final"]["test_top1"],
            "top1_after": final["test_top1"],
            "latency_before_ms": before,
            "latency_after_ms": after,
            "speedup": before / after,
        }

    def _block_gains(self, ctx: StageContext, loaded: Any) -> dict[str, Any]:
        """Measured latency of the network with each graftable block collapsed alone, against none collapsed."""
        import copy

        from edgenas.nn import graft, graftable_blocks, reparameterize

        path = ctx.dir / GAINS_FILE
        if path.is_file():
            return json.loads(path.read_text())
        n = len(graftable_blocks(loaded.model))
        base = reparameterize(loaded.model)
        progress = ctx.progress("compress")
        pairs = []
        for i in range(n):  # each variant measured round-robin with the base: a drift or a cache hits both alike
            progress(i, n, f"measuring the collapse of block {i + 1} of {n}")
            variant = reparameterize(
                graft(copy.deepcopy(loaded.model), "".join("0" if j == i else "1" for j in range(n)))
            )
            workdir = ctx.dir / f"measure-block{i}"
            pairs.append(
                [m.nominal_ms for m in measure_models([base, variant], ctx.config, loaded.resolution, workdir)]
            )
        result = {
            "base_ms": float(np.median([b for b, _ in pairs])),
            "block_ms": [v for _, v in pairs],
            "gains": [1.0 - v / b for b, v in pairs],
        }
        write_text_atomic(path, json.dumps(result, indent=1) + "\n")
        return result

    @staticmethod
    def _latencies(ctx: StageContext, trained: StageRecord, loaded: Any) -> tuple[float, float]:
        from edgenas.models import load_model
        from edgenas.nn import reparameterize

        original = reparameterize(load_model(trained.path("model")).model)
        before, after = measure_models(
            [original, reparameterize(loaded.model)],
            ctx.config,
            loaded.resolution,
            ctx.dir / "measure-final",
            labels=["trained", "compressed"],
            anchor=_anchor(ctx, loaded.resolution),
        )
        return before.nominal_ms, after.nominal_ms

    def _domino(self, ctx: StageContext) -> dict[str, Any]:
        """Domino's search on the trained net (target: ``compress.target_ms`` or the run's), the chosen mask
        fine-tuned from the trained weights, collapsed and measured against the trained net."""
        import copy
        import shutil

        from edgenas.compress.domino import PairSchedule
        from edgenas.compress.domino_job import DominoJob, DominoRun, FinalTraining
        from edgenas.models import load_model
        from edgenas.pipeline._device import LOADS, run_device
        from edgenas.search.landing import LandingPolicy

        config, c = ctx.config, ctx.config.compress
        trained = ctx.upstream["train"]
        loaded = load_model(trained.path("model"))
        images = run_images(config)
        job = DominoJob(
            target_ms=c.target_ms or ctx.upstream["search"].outputs["target_ms"],
            latency_masks=c.latency_masks,
            proxy_masks=c.proxy_masks,
            target_masks=c.target_masks,
            proxy=PairSchedule(
                epochs=c.proxy_epochs,
                images=min(c.proxy_images, len(images.train_labels)),
                test_images=config.data.test_subset or len(images.test_labels),
                resolution=c.proxy_resolution,
                batch_size=min(config.train.batch_size, c.proxy_images),
                seed=config.seed,
            ),
            final=FinalTraining(
                epochs=max(1, c.finetune_epochs),
                images=config.data.subset,
                test_images=config.data.test_subset,
                batch_size=config.train.batch_size,
                lr=c.finetune_lr,
                seed=config.seed,
            ),
            landing=LandingPolicy("close-loop" if c.close_loop else "measure", c.close_loop or 1, loads=LOADS),
        )
        report = ctx.progress("compress")
        summary = DominoRun(
            loaded,
            images,
            ctx.dir / "domino",
            job,
            # the run's anchor: T (in the run's nominal-level ms) is read at the profile's nominal level
            run_device(
                config, loaded.resolution, ctx.dir / "domino" / "device", anchor=_anchor(ctx, loaded.resolution)
            ),
            teacher=copy.deepcopy(loaded.model) if c.distill else None,
            pretrained=True,
            progress=lambda step, done, total, text: report(done, total, f"{step}: {text}"),
        ).run()
        shutil.copyfile(ctx.dir / "domino" / "model.pt", ctx.dir / COMPRESSED_FILE)
        before, after = summary["ungrafted_ms"], summary["measured_ms"]
        top1_before = trained.outputs["final"]["test_top1"]
        applied, reason = _verdict(before, after, top1_before - summary["top1_after"], c.max_accuracy_drop)
        return {
            "files": {"model": COMPRESSED_FILE, "summary": "domino/summary.json"},
            "applied": applied,
            "reason": reason,
            "method": "domino",
            "mask": summary["mask"],
            "blocks": summary["mask_space"]["num_layers"],
            "paying_blocks": [i for i, m in enumerate(summary["mask"]) if m == "0"],
            "domino_target_ms": summary["target_ms"],
            "predicted_ms": summary.get("predicted_ms"),
            "calibrated_ms": summary.get("calibrated_ms"),
            "calibration_factor": summary["calibration"]["factor"],
            "predicted_top1": summary.get("predicted_top1"),
            "searched_mask": summary.get("searched_mask"),
            "landing": summary.get("landing"),
            "top1_before": top1_before,
            "top1_after": summary["top1_after"],
            "latency_before_ms": before,
            "latency_after_ms": after,
            "speedup": summary["speedup"],
            "ratio": summary["ratio"],
        }

    @staticmethod
    def _evaluate(ctx: StageContext, model: Any) -> dict[str, Any]:
        images = run_images(ctx.config)
        result = evaluate(model, images, input_size=run_space(ctx.config).resolution)
        return {"test_top1": result["top1"]}


#: How the compress stage chooses the blocks to graft (``compress.method``).
COMPRESS_METHODS = {"blocks": CompressStage._per_block, "domino": CompressStage._domino}


def _verdict(before: float, after: float, drop: float, max_drop: float) -> tuple[bool, str]:
    if after >= before:
        return (
            False,
            f"the compressed net is not faster when measured ({after:.3f} vs {before:.3f} ms): kept the trained one",
        )
    if drop > max_drop:
        return False, (
            f"compression costs {drop:.1f} points of top-1 (compress.max_accuracy_drop {max_drop:g}): kept "
            "the trained one; raise compress.finetune_epochs"
        )
    return True, f"{before / after:.2f}x faster, {-drop:+.1f} points of top-1"


def final_model(ctx: StageContext) -> tuple[Any, int, str]:
    """The network to deploy (the compressed one when compression was applied, else the trained one), collapsed and
    with BatchNorm folded; its input resolution and where it came from."""
    from edgenas.models import load_model
    from edgenas.nn import reparameterize

    compressed = ctx.upstream["compress"]
    source = compressed.path("model") if compressed.outputs["applied"] else ctx.upstream["train"].path("model")
    loaded = load_model(source)
    return (
        reparameterize(loaded.model).eval(),
        loaded.resolution,
        "compress" if compressed.outputs["applied"] else "train",
    )


@register_stage
class ExportStage(Stage):
    """Export the deployable network to ONNX and verify it with ONNX Runtime."""

    name = "export"
    needs = ("train", "compress")
    sections = ("export",)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgenas.export import export_onnx
        from edgenas.nn.costs import measure_costs

        model, resolution, source = final_model(ctx)
        shape = (1, 3, resolution, resolution)
        result = export_onnx(model, ctx.dir / "model.onnx", shape, opset=ctx.config.export.opset)
        costs = measure_costs(model, shape)
        return {
            "files": {"onnx": "model.onnx"},
            "from": source,
            "rel_error": result.rel_error,
            "size_bytes": result.size_bytes,
            "params": costs.params,
            "mult_adds": costs.mult_adds,
        }


#: Candidates within this share of the final latency are its same-budget baseline.
BASELINE_BAND = 0.05


@register_stage
class CheckStage(Stage):
    """Measure the deployed network on the device and compare it with the budget; say what to change on a miss."""

    name = "check"
    needs = ("search", "channels", "train", "baseline", "compress", "export")
    sections = ("budget", "device", "profile")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgenas.pipeline._device import load_warning

        warning = None if ctx.config.device.remote else load_warning(ctx.config.device.max_load)
        if warning:
            ctx.events.warn(warning)
        model, resolution, source = final_model(ctx)
        ctx.events.progress("check", 0, None, "measuring the deployed network")
        (final,) = measure_models(
            [model], ctx.config, resolution, ctx.dir / "measure", labels=["final"], anchor=_anchor(ctx, resolution)
        )
        measured = final.nominal_ms  # ms at the nominal level, where the profile timed a reference (issue 30)
        contended = contention_warning(final)
        if contended:
            ctx.events.warn(contended)
            warning = f"{warning}; {contended}" if warning else contended
        found = ctx.upstream["search"].outputs
        target, tol = found["target_ms"], ctx.config.budget.tolerance
        error = measured / target - 1.0
        compressed = ctx.upstream["compress"].outputs
        top1 = (
            compressed["top1_after"] if compressed["applied"] else ctx.upstream["train"].outputs["final"]["test_top1"]
        )
        met = error <= tol
        return {
            "files": {},
            "target_ms": target,
            "predicted_ms": _predicted(ctx),
            "measured_ms": measured,
            "levels": final.levels(),
            "error": error,
            "tolerance": tol,
            "met": met,
            "top1": top1,
            "model_from": source,
            "chance_top1": ctx.upstream["train"].outputs["final"]["chance_top1"],
            "baseline": _baseline(ctx.upstream["search"]),
            "trained_baseline": {
                k: v for k, v in ctx.upstream["baseline"].outputs.items() if k not in ("files", "seconds")
            },
            "advice": None if met else _advice(error, found, compressed),
            "load_warning": warning,
        }


def _anchor(ctx: StageContext, resolution: int) -> Any:
    """The run's anchor (the profile's reference at its nominal level; :func:`edgenas.pipeline._device.run_anchor`),
    from the search stage's record of it."""
    return run_anchor(ctx.upstream["search"].outputs.get("level"), run_space(ctx.config), resolution)


def _predicted(ctx: StageContext) -> float:
    """The predicted latency of the trained network: the channel predictor's when the channel stage refined it."""
    channels = ctx.upstream["channels"].outputs
    return channels["found"]["predicted_ms"] if channels["applied"] else ctx.upstream["search"].outputs["predicted_ms"]


def _baseline(search: StageRecord) -> dict[str, Any]:
    """One-shot top-1 of the found arch against the profiled archs within :data:`BASELINE_BAND` of its latency."""
    rows = json.loads(search.path("candidates").read_text())
    found = next(r for r in rows if r["source"] == "search")
    near = [
        r["oneshot_top1"]
        for r in rows
        if r["source"] == "profile" and abs(r["measured_ms"] / found["measured_ms"] - 1) <= BASELINE_BAND
    ]
    return {
        "found_oneshot_top1": found["oneshot_top1"],
        "band": BASELINE_BAND,
        "random_n": len(near),
        "random_median_oneshot_top1": float(np.median(near)) if near else None,
        "random_best_oneshot_top1": max(near) if near else None,
    }


def _advice(error: float, found: dict[str, Any], compressed: dict[str, Any]) -> str:
    """What to change when the deployed network misses the target."""
    low, _ = found["feasible_ms"]
    if found["target_ms"] < low:
        return f"T lies below the fastest arch of the space on this device ({low:.3f} ms): raise budget.latency_ms"
    tips = ["raise search.close_loop (more measurements to land on T)", "raise profile.n (a better predictor)"]
    if not compressed["applied"]:
        tips.append("compression did not pay here (" + compressed["reason"] + ")")
    return f"{error:+.1%} over T: " + "; ".join(tips)

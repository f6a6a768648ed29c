"""The baseline stage: is the found network better than what a user would ship without a search?

Trained side by side with the run's recipe for ``baseline.epochs`` and ``baseline.seeds`` seeds each:

- the found arch;
- MobileNetV2 (torchvision) at the largest width multiplier (:data:`edgenas.compress.peers.BASELINE_WIDTHS`) whose
  latency, measured round-robin beside the found arch in one session, meets the found arch's (``baseline.width``);
- ``baseline.n`` profiled archs whose profiled latency is within ``baseline.band`` of the found arch's (a seeded
  draw; topped up with the closest others when the band holds too few), measured again in that session.

The outputs give each network's measured latency and top-1 per seed, mean and std, and a one-sentence verdict that
says whether the search paid off and whether the gap is resolved at that many seeds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from edgenas._random import seeded_torch
from edgenas.compress.peers import BASELINE_WIDTHS, widest_meeting, width_scaled
from edgenas.hardware import MeasurementStore
from edgenas.pipeline import stages_train  # noqa: F401  (its stages run before this one: register them first)
from edgenas.pipeline._device import LOADS, run_anchor, run_device
from edgenas.pipeline._stage import Stage, StageContext, register_stage
from edgenas.pipeline.stages_measure import run_images, run_space
from edgenas.pipeline.stages_train import train_config, train_in_stage
from edgenas.spaces import ArchSpec, load_specs

#: A gap between two means counts as resolved when it exceeds this many standard errors of the difference (~95%).
RESOLVED_Z = 2.0


@register_stage
class BaselineStage(Stage):
    """Train the found arch beside the width-multiplied MobileNetV2 and random archs of its measured latency."""

    name = "baseline"
    needs = ("profile", "search")
    sections = ("space", "data", "train", "baseline", "device", "seed")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        b = ctx.config.baseline
        if b.n == 0:
            return {"files": {}, "rows": [], "reason": "baseline.n is 0"}
        found = ctx.upstream["search"].outputs
        arch = load_specs(ctx.upstream["search"].path("arch"))[0]
        rows = [{"role": "found", "arch": str(arch), "measured_ms": found["measured"]["median_ms"]}]
        rows += _random_peers(ctx, str(arch), found["measured"]["median_ms"])
        width = _measure_side_by_side(ctx, arch, rows)
        if width is not None:
            rows.append(width)
        images = run_images(ctx.config)
        tconfig = train_config(ctx.config, b.epochs, ctx.config.train.lr)
        space = run_space(ctx.config)
        for i, row in enumerate(rows):
            spec = space.parse(row["arch"]) if row["role"] != "width" else None
            top1 = [
                train_in_stage(
                    ctx, _build(ctx, row, seed), replace(tconfig, seed=seed), _folder(i, k), spec, "baseline", images
                )
                for k, seed in enumerate(_seeds(ctx))
            ]
            row["top1_seeds"] = [t["test_top1"] for t in top1]
            row["top1"] = float(np.mean(row["top1_seeds"]))
            row["top1_std"] = float(np.std(row["top1_seeds"], ddof=1)) if len(top1) > 1 else 0.0
        return _outputs(rows, b.epochs, len(_seeds(ctx)))


def _seeds(ctx: StageContext) -> list[int]:
    return [ctx.config.seed + k for k in range(ctx.config.baseline.seeds)]


def _folder(row: int, seed_index: int) -> str:
    """A network's training folder (the first seed keeps the folder older runs used)."""
    return f"arch{row}" if seed_index == 0 else f"arch{row}-seed{seed_index}"


def _build(ctx: StageContext, row: dict[str, Any], seed: int) -> Any:
    """The network of ``row``, freshly initialised from ``seed``."""
    with seeded_torch(seed):
        if row["role"] == "width":
            images = run_images(ctx.config)
            return width_scaled(row["width"], images.num_classes, run_space(ctx.config).resolution).model
        return run_space(ctx.config).build(run_space(ctx.config).parse(row["arch"]))


def _random_peers(ctx: StageContext, found: str, found_ms: float) -> list[dict[str, Any]]:
    """``baseline.n`` profiled archs of about ``found_ms``: a seeded draw among those within the band, topped up
    with the closest others when the band holds too few."""
    b, profiled = ctx.config.baseline, ctx.upstream["profile"]
    with MeasurementStore(profiled.path("store"), create=False) as db:
        values = db.values(
            profiled.outputs["device"], metric="latency_ms", space_hash=run_space(ctx.config).config_hash
        )
    others = sorted(((a, v) for (_, a), v in values.items() if a != found), key=lambda x: abs(np.log(x[1] / found_ms)))
    inside = [x for x in others if abs(x[1] / found_ms - 1) <= b.band]
    rng = np.random.default_rng(ctx.config.seed)
    chosen = [inside[i] for i in sorted(rng.permutation(len(inside))[: b.n])]
    chosen += [x for x in others if x not in chosen][: b.n - len(chosen)]
    return [{"role": "random", "arch": a, "profiled_ms": v, "measured_ms": v} for a, v in chosen]


def _measure_side_by_side(ctx: StageContext, arch: ArchSpec, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Measure the found arch, the random archs and (with ``baseline.width``) every width of the MobileNetV2 ladder
    round-robin in one session; set each row's ``measured_ms`` to it and return the width row: the largest width
    that meets the found arch's latency of this session (the narrowest, marked, when none does)."""
    space = run_space(ctx.config)
    specs = [space.parse(r["arch"]) for r in rows]
    ladder = []
    if ctx.config.baseline.width:
        classes = run_images(ctx.config).num_classes
        ladder = [width_scaled(w, classes, space.resolution).model for w in BASELINE_WIDTHS]
    anchor = run_anchor(ctx.upstream["profile"].outputs.get("level"), space)
    device = run_device(ctx.config, space.resolution, ctx.dir / "measure", anchor=anchor)
    ctx.events.progress("baseline", 0, None, f"measuring {len(specs) + len(ladder)} networks side by side")
    measured = [m.nominal_ms for m in device.measure([*specs, *ladder], loads=LOADS)]
    for row, ms in zip(rows, measured, strict=False):
        row["measured_ms"] = ms
    if not ladder:
        return None
    widths_ms = measured[len(specs) :]
    best = widest_meeting(BASELINE_WIDTHS, widths_ms, measured[0])
    chosen = 0 if best is None else best
    return {
        "role": "width",
        "arch": f"torchvision:mobilenet_v2?width_mult={BASELINE_WIDTHS[chosen]:g}",
        "width": BASELINE_WIDTHS[chosen],
        "measured_ms": widths_ms[chosen],
        "meets": best is not None,
        "ladder": {f"{w:g}": ms for w, ms in zip(BASELINE_WIDTHS, widths_ms, strict=True)},
    }


def gap_in_errors(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float | None]:
    """(mean top-1 of ``a`` - mean of ``b`` in points, that gap in standard errors of the difference; None when
    either was trained fewer than twice). ``a`` and ``b`` carry ``top1``, ``top1_std`` and ``n``."""
    gap = a["top1"] - b["top1"]
    if min(a["n"], b["n"]) < 2:
        return gap, None
    error = math.sqrt(a["top1_std"] ** 2 / a["n"] + b["top1_std"] ** 2 / b["n"])
    return gap, gap / max(error, 1e-9)


def _gap(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, bool]:
    """(the gap, whether it is resolved: both trained at least twice and the gap above :data:`RESOLVED_Z` standard
    errors of the difference)."""
    gap, errors = gap_in_errors(a, b)
    return gap, errors is not None and abs(errors) > RESOLVED_Z


def _outputs(rows: list[dict[str, Any]], epochs: int, seeds: int) -> dict[str, Any]:
    found, randoms = rows[0], [r for r in rows if r["role"] == "random"]
    width = next((r for r in rows if r["role"] == "width"), None)
    for row in rows:
        row["n"] = seeds
    # the random archs' spread over archs and seeds together: what a random pick of this latency gives
    picks = [t for r in randoms for t in r["top1_seeds"]]
    std = float(np.std(picks, ddof=1)) if len(picks) > 1 else 0.0
    random_mean = {"top1": float(np.mean(picks)), "top1_std": std, "n": len(picks)}
    return {
        "files": {},
        "rows": rows,
        "epochs": epochs,
        "seeds": seeds,
        "found_top1": found["top1"],
        "random_mean_top1": random_mean["top1"],
        "random_std_top1": std,
        "random_best_top1": float(max(r["top1"] for r in randoms)),
        "width_top1": None if width is None else width["top1"],
        "verdict": verdict(found, random_mean, width),
    }


def verdict(found: dict[str, Any], random_mean: dict[str, Any], width: dict[str, Any] | None) -> str:
    """One sentence: did the search pay off against each peer, by how much, and is the gap resolved."""
    trainings = f"{random_mean['n']} training{'s' if random_mean['n'] > 1 else ''}"
    peers = [(f"the random archs' mean over {trainings}", random_mean)]
    if width is not None:
        note = "" if width.get("meets", True) else ", the narrowest: none meets the found arch's latency"
        peers.append((f"MobileNetV2 x{width['width']:g}{note}", width))
    parts, paid = [], True
    for name, peer in peers:
        gap, resolved = _gap(found, peer)
        paid &= gap > 0
        parts.append(f"{gap:+.1f} points vs {name} ({peer['top1']:.1f}%, {'resolved' if resolved else 'not resolved'})")
    head = "The search paid off" if paid else "The search did not pay off"
    seeds = f"{found['n']} seed{'s' if found['n'] > 1 else ''}"
    return f"{head}: the found network trained to {found['top1']:.1f}% ({seeds}); {'; '.join(parts)}."

"""The report's figures, each drawn from plain data into PNG bytes (an explicit Agg canvas per figure: no global
matplotlib state)."""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Pixels per inch of the report's PNGs.
DPI = 110
FOUND = "#d62728"
PROFILED = "#7f7f7f"


#: How many drawn figures a process keeps (about 50 kB each): a run's report is redrawn after every stage, and a
#: finished stage's figures do not change, so each is drawn once rather than once per stage after it.
REMEMBERED_FIGURES = 64
_drawn: OrderedDict[str, bytes] = OrderedDict()


def remembered(draw: Callable[..., bytes]) -> Callable[..., bytes]:
    """``draw`` with its PNG kept per (function, data): the same data gives the same bytes without drawing again."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> bytes:
        try:
            key = hashlib.sha256(pickle.dumps((draw.__qualname__, args, sorted(kwargs.items())))).hexdigest()
        except (pickle.PicklingError, TypeError, AttributeError):  # data that cannot be keyed is drawn every time
            return draw(*args, **kwargs)
        if key not in _drawn:
            _drawn[key] = draw(*args, **kwargs)
            while len(_drawn) > REMEMBERED_FIGURES:
                _drawn.popitem(last=False)
        _drawn.move_to_end(key)
        return _drawn[key]

    return wrapper


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


@remembered
def predictor_scatter(predicted: Sequence[float], measured: Sequence[float], scores: dict[str, float]) -> bytes:
    """Predicted vs measured latency of the held-out archs, with the identity line and the ±10% band."""
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.scatter(measured, predicted, s=10, alpha=0.7)
    lo, hi = float(min(*measured, *predicted)), float(max(*measured, *predicted))
    line = np.linspace(lo, hi, 2)
    ax.plot(line, line, "k-", lw=1)
    ax.fill_between(line, line * 0.9, line * 1.1, color="k", alpha=0.08, label="±10%")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"Spearman {scores['spearman']:.3f}, MAPE {scores['mape']:.1f}%", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def predictors_compared(measured: Sequence[float], predictions: dict[str, Sequence[float]], title: str) -> bytes:
    """Predicted vs measured values of the same held-out archs for several predictor kinds (``edgenas predictor
    compare --plot``), with the identity line."""
    fig = _figure(5.5, 5)
    ax = fig.add_subplot()
    for kind, predicted in predictions.items():
        ax.scatter(measured, predicted, s=6, alpha=0.5, label=kind)
    lo, hi = float(min(measured)), float(max(measured))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend(markerscale=3)
    return _png(fig)


@remembered
def search_trajectory(trajectory: list[dict[str, Any]], target: float, feasible: Sequence[float]) -> bytes:
    """Predicted latency of the derived arch and lambda vs step, with the target (thesis Fig 4.12)."""
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    steps = np.arange(len(trajectory))
    ax.plot(steps, [r["derived"][0] for r in trajectory], lw=1.2, label="derived arch (predicted)")
    ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g} ms")
    ax.axhspan(feasible[0], feasible[1], color="k", alpha=0.04, label="feasible range")
    ax.set_xlabel("record (weight, architecture and correction steps)")
    ax.set_ylabel("predicted latency (ms)")
    twin = ax.twinx()
    twin.plot(steps, [r.get("lambda", [0.0])[0] for r in trajectory], color="#ff7f0e", lw=1, label="lambda")
    twin.set_ylabel("lambda", color="#ff7f0e")
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="best", fontsize=8)
    return _png(fig)


@remembered
def training_curve(epochs: list[dict[str, Any]], chance: float) -> bytes:
    """Test top-1 per epoch of the trained network, with chance level."""
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    ax.plot([r["epoch"] for r in epochs], [r["test_top1"] for r in epochs], marker="o", ms=3)
    ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance {chance:g}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


_KERNEL_EXPANSION = re.compile(r"k(\d+)e(\d+)")
#: Box width per unit of expansion and height per kernel pixel in the architecture drawing (axis units).
BOX_PER_EXPANSION = 0.13
BOX_PER_KERNEL = 0.13


@remembered
def architecture(ops: Sequence[str], layers: Sequence[str], widths: Sequence[int | None]) -> bytes:
    """The found architecture layer by layer: one box per layer, its height the kernel, its width the expansion,
    labelled with the op and the output channels; skipped layers drawn as a thin line."""
    fig = _figure(max(6.0, 0.42 * len(ops)), 3.2)
    ax = fig.add_subplot()
    for i, (op, width) in enumerate(zip(ops, widths, strict=True)):
        match = _KERNEL_EXPANSION.fullmatch(op)
        if match is None:
            ax.plot([i - 0.4, i + 0.4], [0, 0], color=PROFILED, lw=2)
        else:
            k, e = int(match[1]), int(match[2])
            ax.add_patch(_box(i, BOX_PER_EXPANSION * e, BOX_PER_KERNEL * k, color=f"C{k % 10}"))
        label = op if width is None else f"{op}\n{width}ch"
        ax.text(i, -0.62, label, ha="center", va="top", fontsize=6.5, rotation=90)
    ax.set_xlim(-0.7, len(ops) - 0.3)
    ax.set_ylim(-1.6, 0.7)
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels([n.replace("stage", "s").replace(".block", ".") for n in layers], fontsize=6, rotation=90)
    ax.set_yticks([])
    ax.set_title("box height = kernel (3/5/7), box width = expansion (3/6); skip = line", fontsize=9)
    return _png(fig)


def _box(x: float, width: float, height: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - width / 2, -height / 2), width, height, color=color)


@remembered
def compression(gains: Sequence[float], paying: Sequence[int], min_gain: float, title: str) -> bytes:
    """Measured latency saved by collapsing each block alone; the grafted blocks in colour."""
    fig = _figure(max(5.0, 0.35 * len(gains)), 3.2)
    ax = fig.add_subplot()
    colors = ["#2ca02c" if i in paying else PROFILED for i in range(len(gains))]
    ax.bar(range(len(gains)), [100 * g for g in gains], color=colors)
    ax.axhline(100 * min_gain, color="k", ls="--", lw=1, label=f"min gain {min_gain:.0%}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("graftable block")
    ax.set_ylabel("latency saved when collapsed alone (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


@remembered
def pareto(candidates: list[dict[str, Any]], target: float, trained: tuple[float, float] | None) -> bytes:
    """One-shot top-1 vs measured latency of every candidate of the run (the profiled archs and the found one),
    with the target and the trained network's own top-1."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    profiled = [c for c in candidates if c["source"] == "profile"]
    found = [c for c in candidates if c["source"] == "search"]
    ax.scatter(
        [c["measured_ms"] for c in profiled],
        [c["oneshot_top1"] for c in profiled],
        s=12,
        color=PROFILED,
        alpha=0.7,
        label="profiled archs (one-shot)",
    )
    ax.scatter(
        [c["measured_ms"] for c in found],
        [c["oneshot_top1"] for c in found],
        s=70,
        marker="*",
        color=FOUND,
        label="found arch (one-shot)",
        zorder=3,
    )
    if trained is not None:
        ax.scatter(
            [trained[0]], [trained[1]], s=60, marker="D", color="#1f77b4", label="deployed net (trained)", zorder=3
        )
    ax.axvline(target, color="k", ls="--", lw=1, label=f"target {target:g} ms")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


#: Bar colours of the baseline's roles.
_ROLE_COLORS = {"found": FOUND, "width": "#8c564b", "random": PROFILED}


@remembered
def baseline(rows: list[dict[str, Any]], epochs: int) -> bytes:
    """Test top-1 (mean ± std over seeds) of the found arch, of MobileNetV2 at the width that meets its latency and
    of random archs of about its latency, trained alike; each bar labelled with its measured latency."""
    fig = _figure(max(4.0, 0.9 * len(rows) + 1.5), 3.4)
    ax = fig.add_subplot()
    colors = [_ROLE_COLORS.get(r["role"], PROFILED) for r in rows]
    errors = [r.get("top1_std", 0.0) for r in rows]
    ax.bar(range(len(rows)), [r["top1"] for r in rows], yerr=errors, capsize=4, color=colors)
    ax.set_xticks(range(len(rows)))
    labels = [f"x{r['width']:g}" if r["role"] == "width" else r["role"] for r in rows]
    ticks = [f"{label}\n{r['measured_ms']:.3f} ms" for label, r in zip(labels, rows, strict=True)]
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_ylabel("test top-1 (%)")
    seeds = rows[0].get("n", 1) if rows else 1
    ax.set_title(f"same budget: {epochs} epochs each, mean ± std over {seeds} seed(s)", fontsize=9)
    return _png(fig)


def proxy_ranks(rows: Sequence[dict[str, Any]], truth: str) -> bytes:
    """Kendall tau of each proxy against ``truth`` vs training budget, with its bootstrap interval (thesis Fig 4.7)."""
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    for name in dict.fromkeys(r["proxy"] for r in rows):
        mine = [r for r in rows if r["proxy"] == name and r["truth"] == truth]
        epochs = [r["epochs"] for r in mine]
        ax.plot(epochs, [r["kendall_tau"] for r in mine], marker="o", lw=1.2, label=name)
        ax.fill_between(epochs, *zip(*(r["tau_interval"] for r in mine), strict=True), alpha=0.12)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("training epochs of the probe")
    ax.set_ylabel(f"Kendall tau vs {truth} accuracy")
    ax.legend(fontsize=8)
    return _png(fig)


def evolution_scores(candidates: Sequence[dict[str, Any]], target: float, baseline: dict[str, Any] | None) -> bytes:
    """Fitness vs predicted latency of every candidate an evolution scored, coloured by generation, with the target,
    the chosen candidate and the unmodified network (thesis Fig 4.9)."""
    fig = _figure(5.6, 4.0)
    ax = fig.add_subplot()
    points = [c for c in candidates if c["fitness"] is not None]
    paths = ax.scatter(
        [c["cost"] for c in points], [c["fitness"] for c in points], c=[c["generation"] for c in points], s=14
    )
    fig.colorbar(paths, ax=ax, label="generation")
    best = max(points, key=lambda c: c["fitness"])
    ax.scatter([best["cost"]], [best["fitness"]], marker="*", s=180, color=FOUND, label="chosen")
    if baseline is not None and baseline.get("fitness") is not None:
        ax.scatter([baseline["cost"]], [baseline["fitness"]], marker="s", s=60, color="k", label="unmodified")
    ax.axvline(target, color="k", ls="--", lw=1, label=f"target {target:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("fitness")
    ax.legend(fontsize=8)
    return _png(fig)


@remembered
def device_levels(levels_ms: Sequence[float], nominal_ms: float, later: Sequence[tuple[str, float]] = ()) -> bytes:
    """The reference's latency in each profile session, in order (the device's level over the profile), the
    nominal level (their median) and, at the right, the levels the later stages measured (``(label, ms)``)."""
    fig = _figure(6.0, 2.6)
    ax = fig.add_subplot()
    ax.plot(range(len(levels_ms)), levels_ms, ".", color=PROFILED, markersize=3, label="profile sessions")
    ax.axhline(nominal_ms, color="black", linewidth=1, label=f"nominal {nominal_ms:.3f} ms")
    for i, (label, value) in enumerate(later):
        ax.plot(len(levels_ms) + 2 + 3 * i, value, "o", label=f"{label} {value:.3f} ms")
    ax.set_xlabel("measurement session (in order)")
    ax.set_ylabel("reference latency (ms)")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)

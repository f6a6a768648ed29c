"""The figures a search writes into its run directory: the derived architecture's prediction vs step (thesis
Fig 4.12) and, for strategies that record it, the softmax of alpha per layer vs step (thesis Fig 3.13). Each figure
has its own Agg canvas: no global matplotlib state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgenas.search.config import Target
    from edgenas.spaces import SearchSpace

#: Layers per row of the per-layer softmax figure (``alpha.png``).
PROBABILITY_PANELS_PER_ROW = 6
#: Resolution of ``alpha.png`` (dots per inch; its panels are 2.6 x 2.0 inches).
PROBABILITY_DPI = 90


def plot_probabilities(trajectory: list[dict[str, Any]], space: SearchSpace, path: Path) -> None:
    """The softmax of alpha per layer vs weight step, one panel per layer (thesis Fig 3.13), from the records'
    ``probs``; nothing is drawn when no record has them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = [r for r in trajectory if r.get("probs") is not None]
    if not records:
        return
    probs, steps = np.asarray([r["probs"] for r in records]), [r["step"] for r in records]
    columns = min(PROBABILITY_PANELS_PER_ROW, space.num_layers)
    rows = math.ceil(space.num_layers / columns)
    fig = Figure(figsize=(2.6 * columns, 2.0 * rows + 0.6))
    FigureCanvasAgg(fig)  # an explicit backend for this figure: no global matplotlib state
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    names = space.layer_names()
    for layer, ax in enumerate(axes.flat):
        if layer >= space.num_layers:
            ax.set_visible(False)
            continue
        ax.stackplot(steps, probs[:, layer, :].T, labels=space.op_names)
        ax.set_title(names[layer], fontsize=7)
        ax.set_ylim(0, 1)
    axes[0][0].legend(loc="upper left", fontsize=5, ncol=2)
    fig.supxlabel("step")
    fig.supylabel("softmax(alpha)")
    # fixed margins: tight_layout measured a quarter of this figure's time (every search draws it)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.08, top=0.95, wspace=0.08, hspace=0.35)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=PROBABILITY_DPI)
    tmp.replace(path)


def plot_trajectory(trajectory: list[dict[str, Any]], targets: Sequence[Target], path: Path) -> None:
    """Predicted value of the derived architecture vs step with the target line (thesis Fig 4.12); with no target,
    the mean entropy of the architecture distribution vs step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * max(1, len(targets)), 3.6))
    FigureCanvasAgg(fig)  # an explicit backend for this figure: no global matplotlib state
    axes = fig.subplots(1, max(1, len(targets)), squeeze=False)
    steps = [r["step"] for r in trajectory]
    if not targets:
        axes[0][0].plot(steps, [r["entropy"] for r in trajectory], lw=1)
        axes[0][0].set_xlabel("step")
        axes[0][0].set_ylabel("mean entropy of P (nats)")
    for i, (t, ax) in enumerate(zip(targets, axes[0], strict=False)):  # no target: the entropy plot above
        ax.plot(steps, [r["derived"][i] for r in trajectory], lw=1, label="derived (argmax) arch")
        if t.value is not None:
            ax.axhline(t.value, color="k", ls="--", lw=1, label=f"target {t.value:g} {t.unit}")
        ax.set_xlabel("step")
        ax.set_ylabel(f"predicted {t.name} ({t.unit})")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)

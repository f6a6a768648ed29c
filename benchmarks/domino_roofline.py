"""Issue 31 §4: where Domino's speed comes from — a roofline reading of each grafted block of MobileNetV2 x1.0 at
32 px (CIFAR-10's input), batch 8.

For every graftable block: the network with that block alone grafted and collapsed against the ungrafted one —
multiply-adds and memory traffic removed (``edgenas.nn.costs``: convolution elements read and written, thesis
Eq 3.18) and the time saved, measured on this machine's ort-cpu (one thread) beside the ungrafted network (a ratio
in one session, 3 loads, median). Then a least-squares reading ``saved ms ≈ a x removed multiply-adds + b x removed
memory elements + c x removed operators`` (convolutions and activations the runtime launches): which explains the
time this device saves — compute, traffic, or the per-operator overhead that a small input leaves dominant. A GPU
is memory- and launch-bound on these small layers (the thesis' 3.8x on a Jetson); the fit says what this CPU is.

Usage: ``python benchmarks/domino_roofline.py [--runtime ort-cpu]`` (alone on the machine: it measures).
Writes ``benchmarks/results/domino_roofline.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
from _common import RESULTS, machine, write_results
from torch import nn

from edgenas.hardware import RuntimeOptions
from edgenas.hardware.device import LocalDevice
from edgenas.hardware.reference import Anchor
from edgenas.hardware.runtimes import get_runtime
from edgenas.models import load_model
from edgenas.nn import graft, graftable_blocks, reparameterize
from edgenas.nn.costs import measure_costs

RESOLUTION, BATCH, CLASSES = 32, 8, 10
LOADS = 3
#: What ONNX Runtime launches as an operator of its own (BatchNorm is folded into the convs by the collapse).
OPERATORS = (nn.Conv2d, nn.ReLU, nn.ReLU6, nn.Linear)


def operators(model: nn.Module) -> int:
    return sum(isinstance(m, OPERATORS) for m in model.modules())


def block_variants(model) -> list:
    """The network with block i alone grafted and collapsed, for every graftable block i."""
    n = len(graftable_blocks(model))
    masks = ["".join("0" if j == i else "1" for j in range(n)) for i in range(n)]
    return [reparameterize(graft(copy.deepcopy(model), mask)) for mask in masks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="ort-cpu")
    parser.add_argument("--summarise-only", action="store_true", help="refit and rewrite from the results' JSON")
    args = parser.parse_args()
    name = f"domino_roofline{'' if args.runtime == 'ort-cpu' else '_' + args.runtime}"
    model = load_model("torchvision:mobilenet_v2", num_classes=CLASSES, resolution=RESOLUTION).model.eval()
    if args.summarise_only:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        removed = operators(reparameterize(model)) - np.array([operators(v) for v in block_variants(model)])
        for block, ops in zip(payload["blocks"], removed, strict=True):
            block["operators_removed"] = int(ops)
        payload["fit"] = roofline_fit(payload["blocks"])
        write_results(name, payload, markdown(payload))
        return
    shape = (BATCH, 3, RESOLUTION, RESOLUTION)
    base = reparameterize(model)
    variants = block_variants(model)
    all_grafted = reparameterize(graft(copy.deepcopy(model), "0" * len(variants)))
    costs = [measure_costs(m, shape) for m in (base, *variants, all_grafted)]
    runtime = get_runtime(args.runtime, RuntimeOptions(batch=BATCH, resolution=RESOLUTION, threads=1))
    device = LocalDevice(runtime, runtime.options).with_anchor(Anchor(base, None, "ungrafted"))
    labels = [f"block {i}" for i in range(len(variants))] + ["all grafted"]
    rows = device.measure([*variants, all_grafted], loads=LOADS, labels=labels)
    level = float(np.median([r.level_ms for r in rows]))
    blocks = []
    for i, row in enumerate(rows[:-1]):
        c = costs[i + 1]
        blocks.append(
            {
                "block": i,
                "mult_adds_removed_M": (costs[0].mult_adds - c.mult_adds) / 1e6,
                "memory_removed_M": (costs[0].memory_accesses - c.memory_accesses) / 1e6,
                "operators_removed": operators(base) - operators(variants[i]),
                "ratio": row.relative,
                "saved_ms": (1 - row.relative) * level,
                "saved_share": 1 - row.relative,
            }
        )
    fit = roofline_fit(blocks)
    payload = {
        "machine": machine(),
        "runtime": {"name": args.runtime, "batch": BATCH, "resolution": RESOLUTION, "threads": 1, "loads": LOADS},
        "ungrafted": {"ms": level, **costs[0].as_dict()},
        "all_grafted": {"ratio": rows[-1].relative, **costs[-1].as_dict()},
        "blocks": blocks,
        "fit": fit,
    }
    write_results(name, payload, markdown(payload))


def roofline_fit(blocks: list[dict]) -> dict[str, float]:
    """Least squares of the saved ms on removed multiply-adds (M), memory elements (M) and operators, and the
    share of the saved time's variance (R^2) each term explains alone and all three together."""
    y = np.array([b["saved_ms"] for b in blocks])
    x = np.array([[b["mult_adds_removed_M"], b["memory_removed_M"], b["operators_removed"]] for b in blocks], float)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)

    def r2(columns: np.ndarray) -> float:
        fitted, *_ = np.linalg.lstsq(columns, y, rcond=None)
        residual = y - columns @ fitted
        return float(1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum())

    return {
        "ms_per_M_mult_adds": float(coef[0]),
        "ms_per_M_memory": float(coef[1]),
        "ms_per_operator": float(coef[2]),
        "r2_all": r2(x),
        "r2_mult_adds": r2(x[:, :1]),
        "r2_memory": r2(x[:, 1:2]),
        "r2_operators": r2(x[:, 2:]),
    }


def markdown(p: dict) -> str:
    m, u, a, f = p["machine"], p["ungrafted"], p["all_grafted"], p["fit"]
    lines = [
        "# Where Domino's speed comes from (`python benchmarks/domino_roofline.py`; issue 31 §4)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), {m['date']}; {p['runtime']['name']}, batch {BATCH}, one "
        f"thread, torchvision MobileNetV2 x1.0 (10 classes) at {RESOLUTION} px. Ungrafted: {u['ms']:.3f} ms in the "
        f"session, {u['mult_adds_M']:.1f} M multiply-adds, {u['memory_accesses_M']:.2f} M conv elements accessed "
        f"(intensity {u['intensity']:.1f}). All grafted: ratio {a['ratio']:.3f} (speed-up {1 / a['ratio']:.2f}x), "
        f"{a['mult_adds_M']:.1f} M multiply-adds, {a['memory_accesses_M']:.2f} M elements.",
        "",
        "Each row: block i alone grafted and collapsed, timed beside the ungrafted network (ratio in one session, "
        f"{LOADS} loads). Negative removals are added work: the collapsed kxk conv is dense where the block had a "
        "cheap depthwise one.",
        "",
        "| block | multiply-adds removed (M) | memory removed (M elements) | operators removed | ratio | time saved "
        "(ms) | saved |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in p["blocks"]:
        lines.append(
            f"| {b['block']} | {b['mult_adds_removed_M']:+.2f} | {b['memory_removed_M']:+.3f} | "
            f"{b['operators_removed']} | {b['ratio']:.3f} | {b['saved_ms']:+.3f} | {100 * b['saved_share']:+.1f}% |"
        )
    lines += [
        "",
        f"**Reading**: saved ms ≈ {f['ms_per_M_mult_adds']:.4f} x removed M multiply-adds + "
        f"{f['ms_per_M_memory']:.4f} x removed M memory elements + {f['ms_per_operator']:.4f} x removed operators "
        f"(R² {f['r2_all']:.2f}, least squares without intercept); alone (also without intercept), multiply-adds "
        f"explain R² {f['r2_mult_adds']:.2f} of the per-block savings, memory traffic {f['r2_memory']:.2f}, "
        f"operators {f['r2_operators']:.2f}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

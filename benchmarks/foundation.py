"""Figures of the foundation issue: |A| per space, the all-k3e6 mbv2 next to torchvision's MobileNetV2, ONNX parity.

Usage: python benchmarks/foundation.py [--archs-per-space 5] [--with-tests]

ONNX parity is measured on sampled archs of every space with random BatchNorm statistics (so eval-mode BN is not an
identity), exported at batch 1 and the space's resolution, run in ONNX Runtime (CPU), compared with PyTorch.
``--with-tests`` also times the full test suite (``pytest -q``) in a subprocess.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torchvision
from _common import machine, write_results

from edgenas.export import export_onnx
from edgenas.nn.costs import measure_costs
from edgenas.nn.testing import randomize_batchnorm
from edgenas.spaces import get_space, list_spaces


def space_sizes() -> list[dict]:
    rows = []
    for name in list_spaces():
        space = get_space(name)
        masked = int((~space.mask()).sum())
        rows.append(
            {
                "space": name,
                "layers": space.num_layers,
                "ops": space.num_ops,
                "masked_choices": masked,
                "size": str(space.size()),
                "log10_size": round(math.log10(space.size()), 3),
            }
        )
    return rows


def mobilenet_comparison() -> list[dict]:
    rows = []
    for name, resolution in (("mbv2", 224), ("mbv2-cifar", 32)):
        space = get_space(name)
        net = space.build(space.make_spec(["k3e6"] * space.num_layers))
        costs = measure_costs(net, space.input_shape())
        rows.append({"model": f"{name} all-k3e6", "resolution": resolution, **costs.as_dict()})
    tv = torchvision.models.mobilenet_v2(weights=None)
    rows.append(
        {"model": "torchvision mobilenet_v2 (x1.0)", "resolution": 224, **measure_costs(tv, (1, 3, 224, 224)).as_dict()}
    )
    return rows


def onnx_parity(per_space: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in list_spaces():
            space = get_space(name)
            for i, spec in enumerate(space.sample(seed=2024, n=per_space)):
                net = randomize_batchnorm(space.build(spec), seed=i)
                start = time.perf_counter()
                result = export_onnx(net, Path(tmp) / f"{name}-{i}.onnx", space.input_shape(1))
                rows.append(
                    {
                        "space": name,
                        "arch": str(spec),
                        "rel_error": result.rel_error,
                        "max_abs_error": result.max_abs_error,
                        "export_and_verify_s": round(time.perf_counter() - start, 3),
                        "size_MB": round(result.size_bytes / 1e6, 2),
                    }
                )
    return rows


def nb201_against_table(step: int = 50) -> dict | None:
    """Params and multiply-adds of every ``step``-th NB201 cell next to the benchmark table (needs EDGENAS_DATA)."""
    import csv
    import os

    table = Path(os.environ.get("EDGENAS_DATA", "")) / "nb201" / "nb201_cifar10_200ep.csv"
    if not table.is_file():
        return None
    space = get_space("nb201")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))[::step]
    params_equal, flops_gap = 0, []
    for row in rows:
        costs = measure_costs(space.build(space.parse(row["arch_str"])), space.input_shape())
        params_equal += int(costs.params == round(float(row["cifar10_params_M"]) * 1e6))
        flops_gap.append(float(row["cifar10_flops_M"]) - costs.mult_adds / 1e6)
    return {"cells": len(rows), "params_equal": params_equal, "flops_gap_M": [min(flops_gap), max(flops_gap)]}


def time_tests() -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q"], capture_output=True, text=True, check=False)
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "returncode": proc.returncode,
        "summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
    }


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Foundation figures",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}, onnxruntime {m['onnxruntime']}; "
        f"commit {m['git_commit']}, {m['date']}. Command: `python benchmarks/foundation.py"
        f"{' --with-tests' if payload.get('tests') else ''}`.",
        "",
        "## |A| per space (after masking)",
        "",
        "| space | layers | ops | masked (layer, op) pairs | \\|A\\| | log10 |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["sizes"]:
        lines.append(
            f"| {r['space']} | {r['layers']} | {r['ops']} | {r['masked_choices']} | {r['size']} | {r['log10_size']} |"
        )
    lines += [
        "",
        "## All-k3e6 MobileNetV2 space vs torchvision's MobileNetV2 (batch 1)",
        "",
        "| model | input | params (M) | mult-adds (M) | FLOPs (M, torch counter) | memory accesses (M) | intensity |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["mobilenet"]:
        lines.append(
            f"| {r['model']} | {r['resolution']} | {r['params_M']:.3f} | {r['mult_adds_M']:.1f} | {r['mflops']:.1f} | "
            f"{r['memory_accesses_M']:.2f} | {r['intensity']:.2f} |"
        )
    lines += ["", "## ONNX parity (ONNX Runtime CPU vs PyTorch, random BN statistics, batch 1)", ""]
    lines += ["| space | archs | max rel. error | max abs. error | mean export+verify (s) |", "|---|---|---|---|---|"]
    for name in sorted({r["space"] for r in payload["onnx"]}):
        rows = [r for r in payload["onnx"] if r["space"] == name]
        lines.append(
            f"| {name} | {len(rows)} | {max(r['rel_error'] for r in rows):.2e} | "
            f"{max(r['max_abs_error'] for r in rows):.2e} | "
            f"{sum(r['export_and_verify_s'] for r in rows) / len(rows):.2f} |"
        )
    nb = payload.get("nb201_table")
    if nb:
        lines += [
            "",
            f"NB201 against the benchmark table ({nb['cells']} cells, every 50th): parameter counts equal in "
            f"{nb['params_equal']}; the table's MFLOPs exceed our multiply-adds by {nb['flops_gap_M'][0]:.2f}-"
            f"{nb['flops_gap_M'][1]:.2f} M (the table also counts BN and pooling).",
        ]
    if payload.get("tests"):
        t = payload["tests"]
        lines += ["", f"Test suite: `pytest -q` took {t['wall_s']} s ({t['summary']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs-per-space", type=int, default=5)
    parser.add_argument("--with-tests", action="store_true")
    args = parser.parse_args()
    payload = {
        "machine": machine(),
        "sizes": space_sizes(),
        "mobilenet": mobilenet_comparison(),
        "onnx": onnx_parity(args.archs_per_space),
        "nb201_table": nb201_against_table(),
    }
    if args.with_tests:
        payload["tests"] = time_tests()
    md = markdown(payload)
    write_results("foundation", payload, md)
    print(md)


if __name__ == "__main__":
    main()

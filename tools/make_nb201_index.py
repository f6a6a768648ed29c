"""Regenerate src/edgenas/spaces/data/nb201_index.txt from a NAS-Bench-201 table with `index` and `arch_str`.

Usage: python tools/make_nb201_index.py DATA_DIR/nb201/nb201_cifar10_200ep.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def codes(arch: str) -> str:
    ops = [tok.split("~")[0] for node in arch.split("+") for tok in node.strip("|").split("|")]
    return "".join(str(OPS.index(op)) for op in ops)


def main(table: str) -> None:
    with open(table, newline="") as f:
        rows = {int(r["index"]): r["arch_str"] for r in csv.DictReader(f)}
    if sorted(rows) != list(range(len(OPS) ** 6)):
        raise SystemExit("the table must hold every index 0..15624 exactly once")
    out = Path(__file__).resolve().parents[1] / "src/edgenas/spaces/data/nb201_index.txt"
    out.write_text("".join(codes(rows[i]) + "\n" for i in range(len(rows))), encoding="ascii")
    print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
    main(sys.argv[1])

"""NAS-Bench-201 as the referee: the true accuracy and device latency of every cell, the oracle at a latency budget.

A search on the NAS-Bench-201 space derives one of its 15,625 cells; the tables give what no CPU budget can measure:
the cell's accuracy after the full 200-epoch schedule (Dong & Yang, ICLR 2020; NATS-Bench ``tss`` data) and its
measured latency on real edge devices (HW-NAS-Bench, Li et al., ICLR 2021: an NVIDIA Jetson TX2 "edgegpu" and a
Raspberry Pi 4, batch 1, CIFAR-10 input). With a latency target T, the fair yardstick is the **oracle** — the best
true test accuracy among all cells whose true latency meets T — and a found cell is judged by its **regret** to it
(oracle accuracy minus its own, in points) and by where it ranks among the cells of its own latency, never by
latency alone.

Files, under a folder given by the caller (``--bench-dir``) or ``$EDGENAS_DATA``:
``nb201/nb201_cifar10_200ep.csv`` (index, arch_str, cifar10_valid_acc, cifar10_test_acc, params, FLOPs) and
``hwnasbench/hwnasbench_nb201_cifar10.csv`` (index, arch_str, one column per device metric).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenas.errors import BenchError
from edgenas.spaces import ArchSpec, get_space

ENV_VAR = "EDGENAS_DATA"
ACCURACY_FILE = Path("nb201") / "nb201_cifar10_200ep.csv"
#: The same cells after 12 epochs of training (NAS-Bench-201's short-schedule file).
SHORT_ACCURACY_FILE = Path("nb201") / "nb201_cifar10_12ep.csv"
LATENCY_FILE = Path("hwnasbench") / "hwnasbench_nb201_cifar10.csv"
NUM_CELLS = 15_625
#: Short names of the HW-NAS-Bench columns (``--latency-column edgegpu``); the full column names work too.
LATENCY_COLUMNS = {
    "edgegpu": "cifar10_edgegpu_latency_ms",
    "raspi4": "cifar10_raspi4_latency_ms",
}
CONSTRAINTS = ("eq", "le")


@dataclass(frozen=True)
class NB201Table:
    """The referee's data, one entry per benchmark index (0..15624, in order).

    Attributes:
        arch: the cell strings.
        valid_acc / test_acc: 200-epoch CIFAR-10 accuracy (%): trained on 25k, validated on the other 25k
            ("cifar10-valid", the search setting) / trained on 50k, tested on the 10k test set (the reported one).
        latency: device column -> latency (ms) of every cell; empty when the HW-NAS-Bench file is absent.
        source: the folder the tables were read from.
    """

    arch: tuple[str, ...]
    valid_acc: np.ndarray
    test_acc: np.ndarray
    latency: dict[str, np.ndarray]
    source: Path

    def index_of(self, cell: int | str | ArchSpec) -> int:
        """The benchmark index of a cell given by index, by cell string or as a spec of the ``nb201`` space.

        Raises:
            BenchError: an index outside 0..15624 or a string that is not a cell of the space.
        """
        if isinstance(cell, ArchSpec):
            return get_space("nb201").index(cell)
        text = str(cell).strip()
        if text.lstrip("-").isdigit():
            index = int(text)
            if not 0 <= index < NUM_CELLS:
                raise BenchError(f"cell index {index} outside 0..{NUM_CELLS - 1}")
            return index
        try:
            return get_space("nb201").index(get_space("nb201").parse(text))
        except Exception as exc:  # an ArchError with the reason
            raise BenchError(f"{text!r} is not a NAS-Bench-201 cell: {exc}") from exc

    def column(self, name: str) -> str:
        """The full latency column of ``name`` (a short name such as ``edgegpu`` or a full column name).

        Raises:
            BenchError: no such column in the tables read.
        """
        full = LATENCY_COLUMNS.get(name, name)
        if full not in self.latency:
            known = ", ".join([*LATENCY_COLUMNS, *self.latency]) if self.latency else "none (no HW-NAS-Bench file)"
            raise BenchError(f"no latency column {name!r}; columns: {known}")
        return full

    def lookup(self, cell: int | str | ArchSpec) -> dict[str, object]:
        """Everything the tables hold about one cell: index, cell string, accuracies (%), latencies (ms)."""
        i = self.index_of(cell)
        return {
            "index": i,
            "arch": self.arch[i],
            "valid_acc": float(self.valid_acc[i]),
            "test_acc": float(self.test_acc[i]),
            "latency_ms": {name: float(values[i]) for name, values in self.latency.items()},
        }


def _read_rows(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise BenchError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from exc
    if len(rows) != NUM_CELLS or any(int(r["index"]) != i for i, r in enumerate(rows)):
        raise BenchError(f"{path}: expected the {NUM_CELLS} cells in index order 0..{NUM_CELLS - 1}")
    return rows


def _floats(rows: list[dict[str, str]], column: str, path: Path) -> np.ndarray:
    try:
        values = np.array([float(r[column]) for r in rows])
    except ValueError as exc:
        raise BenchError(f"{path}: column {column} holds a non-number ({exc})") from exc
    if not np.isfinite(values).all():
        raise BenchError(f"{path}: column {column} holds NaN or infinite values")
    return values


def resolve_bench_dir(path: str | os.PathLike[str] | None) -> Path:
    """The folder holding ``nb201/`` (and ``hwnasbench/``): ``path`` if given, else ``$EDGENAS_DATA``.

    Raises:
        BenchError: neither given, or the folder lacks the NAS-Bench-201 accuracy table.
    """
    value = str(path) if path is not None else os.environ.get(ENV_VAR, "")
    if not value:
        raise BenchError(
            f"no benchmark tables: pass --bench-dir DIR or set {ENV_VAR} (the folder with {ACCURACY_FILE})"
        )
    root = Path(value).expanduser()
    if not (root / ACCURACY_FILE).is_file():
        raise BenchError(f"no NAS-Bench-201 table at {root / ACCURACY_FILE}")
    return root


def load_nb201(path: str | os.PathLike[str] | None = None) -> NB201Table:
    """Read the NAS-Bench-201 accuracies and, when present, the HW-NAS-Bench latencies (about 0.3 s).

    Raises:
        BenchError: missing or malformed files; cell strings of the two files that disagree.
    """
    root = resolve_bench_dir(path)
    acc_path = root / ACCURACY_FILE
    rows = _read_rows(acc_path, ("index", "arch_str", "cifar10_valid_acc", "cifar10_test_acc"))
    arch = tuple(r["arch_str"] for r in rows)
    latency: dict[str, np.ndarray] = {}
    lat_path = root / LATENCY_FILE
    if lat_path.is_file():
        lat_rows = _read_rows(lat_path, ("index", "arch_str"))
        if any(r["arch_str"] != a for r, a in zip(lat_rows, arch, strict=True)):
            raise BenchError(f"{lat_path} and {acc_path} disagree on the cell of some index")
        for column in (c for c in lat_rows[0] if c.endswith("_latency_ms")):
            latency[column] = _floats(lat_rows, column, lat_path)
    valid = _floats(rows, "cifar10_valid_acc", acc_path)
    test = _floats(rows, "cifar10_test_acc", acc_path)
    return NB201Table(arch, valid, test, latency, root)


def load_short_accuracy(path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """CIFAR-10 test accuracy (%) of every cell after NAS-Bench-201's 12-epoch schedule, by index.

    Raises:
        BenchError: the file is missing or malformed, or does not hold one row per cell in index order.
    """
    source = resolve_bench_dir(path) / SHORT_ACCURACY_FILE
    rows = _read_rows(source, ("index", "arch_str", "cifar10_test_acc"))
    return _floats(rows, "cifar10_test_acc", source)


@dataclass(frozen=True)
class Oracle:
    """The best cell at a latency budget, and what a random cell of that budget scores.

    Attributes:
        column / target_ms / tolerance / constraint: the budget (``eq``: true latency within ``tolerance`` of T;
            ``le``: also at most T).
        index / test_acc / latency_ms: the best cell by true test accuracy among the cells in the budget.
        cells: how many cells meet the budget.
        mean_test_acc: their mean test accuracy (%): what a random cell of that latency scores on average.
    """

    column: str
    target_ms: float
    tolerance: float
    constraint: str
    index: int
    test_acc: float
    latency_ms: float
    cells: int
    mean_test_acc: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def in_budget(latency: np.ndarray, target_ms: float, tolerance: float, constraint: str) -> np.ndarray:
    """Mask of the latencies that meet a budget: within ``tolerance`` (relative) of ``target_ms``, and at most it
    for ``le``."""
    if constraint not in CONSTRAINTS:
        raise BenchError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    mask = np.abs(latency / target_ms - 1.0) <= tolerance
    return mask & (latency <= target_ms) if constraint == "le" else mask


def oracle(
    table: NB201Table, column: str, target_ms: float, *, tolerance: float = 0.02, constraint: str = "eq"
) -> Oracle:
    """The oracle of a latency budget on one device column.

    Raises:
        BenchError: an unknown column, or no cell meets the budget (the message gives the column's range).
    """
    full = table.column(column)
    latency = table.latency[full]
    mask = in_budget(latency, target_ms, tolerance, constraint)
    if not mask.any():
        raise BenchError(
            f"no cell has a true {full} within {tolerance:.1%} of {target_ms:g} ms ({constraint}); the column spans "
            f"{latency.min():.4g}..{latency.max():.4g} ms"
        )
    candidates = np.flatnonzero(mask)
    best = int(candidates[np.argmax(table.test_acc[candidates])])
    return Oracle(
        full,
        float(target_ms),
        float(tolerance),
        constraint,
        best,
        float(table.test_acc[best]),
        float(latency[best]),
        int(mask.sum()),
        float(table.test_acc[candidates].mean()),
    )


def judge(table: NB201Table, cell: int | str | ArchSpec, budget: Oracle) -> dict[str, object]:
    """A found cell against the oracle of its budget: its true figures, regret (points), whether its true latency
    meets the budget, and its rank among the cells of its own latency (within the budget's tolerance of it).

    ``rank`` is 1 for the best; ``percentile`` is the share of those cells it beats or ties (100 = the best).
    """
    found = table.lookup(cell)
    i = int(found["index"])
    latency = table.latency[budget.column]
    own = float(latency[i])
    peers = np.flatnonzero(np.abs(latency / own - 1.0) <= budget.tolerance)
    better = int((table.test_acc[peers] > table.test_acc[i]).sum())
    return {
        **found,
        "true_latency_ms": own,
        "latency_error": own / budget.target_ms - 1.0,
        "meets_budget": bool(in_budget(np.array([own]), budget.target_ms, budget.tolerance, budget.constraint)[0]),
        "regret": budget.test_acc - float(found["test_acc"]),
        "rank": better + 1,
        "peers": len(peers),
        "percentile": 100.0 * (len(peers) - better) / len(peers),
    }

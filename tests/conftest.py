"""Shared fixtures: the data folder (from EDGENAS_DATA); one torch thread per worker under pytest-xdist; the
pipeline tests' deterministic device and reference run (``pipeline/_pipeline.py``, registered here once: imported
into each test module instead, a session fixture is one fixture per module, and the ~30 s reference run was built
once per module)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "pipeline"))  # where the `_pipeline` plugin lives
pytest_plugins = ["_pipeline"]


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` each worker computes with one thread: N workers on N cores, not N x the cores (the
    tests use tiny shapes, where a second intra-op thread buys little and oversubscription costs much)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder EDGENAS_DATA points at (``make test`` points it at the shared data); tests needing it skip without."""
    value = os.environ.get("EDGENAS_DATA")
    if not value or not Path(value).is_dir():
        pytest.skip("EDGENAS_DATA is not set to a data folder")
    return Path(value)


def read_table(data_dir: Path, relative: str) -> list[dict[str, str]]:
    """Rows of a CSV under the data folder as dicts; skips the test when the file is absent."""
    import csv

    path = data_dir / relative
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``edgenas ARGV`` in-process; returns (exit code, stdout, stderr)."""
    from edgenas.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return (info.value.code or 0), captured.out, captured.err


# Planted cells of the hand-made NAS-Bench-201 tables: (index, edge-GPU latency ms, test accuracy %). Every other cell
# scores 50% at 20+ ms, so the answers at a 5 ms budget are known: 100 is the best within 2% ("eq") but above 5 ms,
# 200 the best at most 5 ms ("le"), 300 a found cell in the band.
NB201_PLANTED = ((100, 5.05, 95.0), (200, 5.0, 90.0), (300, 4.95, 80.0))


def write_nb201_tables(root: Path) -> Path:
    """Write a complete NAS-Bench-201 + HW-NAS-Bench table pair under ``root`` (all 15,625 cells in index order,
    with their real cell strings) whose oracle is known (:data:`NB201_PLANTED`); returns ``root``."""
    import csv

    import numpy as np

    from edgenas.spaces import get_space

    space = get_space("nb201")
    n = 15_625
    latency = 20.0 + np.arange(n) / n
    accuracy = np.full(n, 50.0)
    for index, ms, acc in NB201_PLANTED:
        latency[index], accuracy[index] = ms, acc
    (root / "nb201").mkdir(parents=True)
    (root / "hwnasbench").mkdir()
    cells = [space.format(space.from_index(i)) for i in range(n)]
    with (root / "nb201" / "nb201_cifar10_200ep.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "arch_str", "cifar10_valid_acc", "cifar10_test_acc"])
        w.writerows([i, cells[i], accuracy[i] - 3, accuracy[i]] for i in range(n))
    with (root / "nb201" / "nb201_cifar10_12ep.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "arch_str", "cifar10_valid_acc", "cifar10_test_acc"])
        w.writerows([i, cells[i], accuracy[i] - 23, accuracy[i] - 20] for i in range(n))
    with (root / "hwnasbench" / "hwnasbench_nb201_cifar10.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "arch_str", "cifar10_edgegpu_latency_ms", "cifar10_raspi4_latency_ms"])
        w.writerows([i, cells[i], latency[i], 10 * latency[i]] for i in range(n))
    return root

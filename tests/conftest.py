"""Shared fixtures: the data folder (from EDGENAS_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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

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

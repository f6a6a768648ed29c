"""Seeded randomness without global side effects: every seeding in the library goes through here.

PyTorch initialises module weights (and draws dropout masks) from its global generator; there is no per-module
generator to hand it. :func:`seeded_torch` therefore forks the global RNG state, seeds it for the block, and puts the
caller's state back afterwards, so library code is reproducible without changing what the caller's code draws next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators (CPU and every CUDA device) seeded by ``seed``; restore the
    caller's generator states on exit."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for device in devices:
            torch.cuda.default_generators[device].manual_seed(seed)
        yield

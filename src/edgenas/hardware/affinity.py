"""Pinning a measurement session to one core: an option of the protocol (``Protocol.pin``), off by default.

Measured on this 2-core VM (``benchmarks/results/latency_repeatability.md``, issue 30): with one other process
keeping a core busy, a one-thread ONNX Runtime session measures within 5% of its quiet milliseconds and its ratios
to a reference timed beside within 0.5%, pinned or not; with two (the machine oversubscribed: three runnable
threads on two cores), milliseconds rise ~70% (time slicing) and per-round ratios move by 1-4% — pinned 1.3-2.9%,
unpinned 0.9-3.5%: no consistent gain. Pinning is kept for devices where the scheduler moves threads more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["current_core", "one_core"]

#: Field of ``/proc/self/stat`` (0-based, after the command name) holding the core the process last ran on.
_PROCESSOR_FIELD = 36


def current_core() -> int | None:
    """The core this process runs on now (Linux ``/proc/self/stat``), None where unreadable."""
    try:
        return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[_PROCESSOR_FIELD])
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def one_core(enabled: bool = True) -> Iterator[int | None]:
    """Pin the calling thread (and the threads it starts) to the core it runs on for the block, restoring its
    affinity after; yields the core, or None where pinning is off or unavailable (not Linux, no permission)."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    core, before = current_core(), os.sched_getaffinity(0)
    if core is None or core not in before:
        yield None
        return
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield None
        return
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)

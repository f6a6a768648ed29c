"""The measurement protocol: warm-up, timed repeats, median and inter-quartile range, bounded re-measurement.

A runner is a zero-argument callable that runs the network once and returns the elapsed time in milliseconds (the
runtime times itself: ``perf_counter`` around a synchronous call on CPUs, CUDA events on GPUs). Medians and IQRs
are robust to the scheduling hiccups of a shared machine; a measurement whose relative IQR (IQR / median) stays
above the threshold after the allowed retries is kept but flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

Runner = Callable[[], float]


@dataclass(frozen=True)
class Protocol:
    """How to measure.

    Attributes:
        warmup: untimed runs before timing (caches, allocator, lazy initialisation).
        repeats: timed runs per attempt.
        max_rel_iqr: relative IQR above which an attempt is repeated.
        max_retries: extra attempts allowed before the row is flagged.
        pin: pin a one-thread session to the core it runs on while it measures
            (:func:`edgenas.hardware.affinity.one_core`).
    """

    warmup: int = 10
    repeats: int = 50
    max_rel_iqr: float = 0.10
    max_retries: int = 2
    pin: bool = False


DEFAULT_PROTOCOL = Protocol()


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one measurement (times in ms).

    Attributes:
        median_ms: median of the timed runs of the kept attempt.
        iqr_ms: inter-quartile range (75th - 25th percentile).
        mean_ms: mean.
        min_ms: fastest run.
        n: timed runs in the kept attempt.
        attempts: attempts made (1 = no re-measurement).
        flagged: the relative IQR stayed above the threshold.
        reference_ms: measured beside a reference (:func:`measure_beside`): the reference's median in the same
            rounds (ms; the device's level at that moment), else None.
        relative: measured beside a reference: the median over rounds of this run's time over the reference's
            time in the same round (a ratio that the device's level cancels out of), else None.
    """

    median_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    n: int
    attempts: int = 1
    flagged: bool = False
    reference_ms: float | None = None
    relative: float | None = None

    @property
    def rel_iqr(self) -> float:
        """IQR / median."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, float | int | bool]:
        """JSON-ready dict including ``rel_iqr``."""
        return {**asdict(self), "rel_iqr": self.rel_iqr}


def summarize(samples_ms: Sequence[float], attempts: int = 1, flagged: bool = False) -> LatencyStats:
    """Median, IQR, mean and minimum of timed runs."""
    x = np.asarray(samples_ms, dtype=float)
    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    return LatencyStats(float(q50), float(q75 - q25), float(x.mean()), float(x.min()), len(x), attempts, flagged)


def measure(run: Runner, protocol: Protocol = DEFAULT_PROTOCOL) -> LatencyStats:
    """Measure one runner: warm up, then time attempts until the relative IQR is acceptable or retries run out.

    When every attempt is too noisy the steadiest attempt (lowest relative IQR) is returned, flagged.
    """
    for _ in range(protocol.warmup):
        run()
    best: LatencyStats | None = None
    for attempt in range(1, protocol.max_retries + 2):
        stats = summarize([run() for _ in range(protocol.repeats)], attempts=attempt)
        if stats.rel_iqr <= protocol.max_rel_iqr:
            return stats
        if best is None or stats.rel_iqr < best.rel_iqr:
            best = stats
    assert best is not None
    return summarize_flagged(best, protocol.max_retries + 1)


def summarize_flagged(stats: LatencyStats, attempts: int) -> LatencyStats:
    """A copy of ``stats`` marked as flagged after ``attempts`` attempts."""
    return replace(stats, attempts=attempts, flagged=True)


def measure_interleaved(runs: Sequence[Runner], protocol: Protocol = DEFAULT_PROTOCOL) -> list[LatencyStats]:
    """Measure several runners round-robin (one timed run of each in turn), so slow drift of the machine (thermal,
    other load) affects all of them alike; noisy ones are re-measured, again round-robin, within the retry bound."""
    return _round_robin(runs, None, protocol)[0]


def measure_beside(
    runs: Sequence[Runner], reference: Runner, protocol: Protocol = DEFAULT_PROTOCOL
) -> tuple[list[LatencyStats], LatencyStats]:
    """Measure ``runs`` round-robin with a ``reference`` timed once in every round, so that each run's time can be
    read relative to the reference's in the same round (issue 30: a slower or faster moment of the device moves both
    and cancels in the ratio). Noisy runs are re-measured, again round-robin and again beside the reference, within
    the retry bound. Returns each run's statistics (with ``reference_ms`` and ``relative`` of its kept attempt) and
    the reference's statistics over every round of the session (its median: the session's **level**)."""
    out, level = _round_robin(runs, reference, protocol)
    assert level is not None
    return out, level


def _round_robin(
    runs: Sequence[Runner], reference: Runner | None, protocol: Protocol
) -> tuple[list[LatencyStats], LatencyStats | None]:
    """The round-robin protocol of :func:`measure_interleaved` and, with a ``reference`` run once a round,
    :func:`measure_beside`."""
    for _ in range(protocol.warmup):
        for run in (*runs, *([reference] if reference is not None else [])):
            run()
    results: list[LatencyStats | None] = [None] * len(runs)
    reference_samples: list[float] = []
    pending = list(range(len(runs)))
    for attempt in range(1, protocol.max_retries + 2):
        samples: dict[int, list[float]] = {i: [] for i in pending}
        level: list[float] = []
        for _ in range(protocol.repeats):
            for i in pending:
                samples[i].append(runs[i]())
            if reference is not None:
                level.append(reference())
        reference_samples += level
        still = []
        for i in pending:
            stats = summarize(samples[i], attempts=attempt)
            if level:
                ratio = float(np.median(np.asarray(samples[i]) / np.asarray(level)))
                stats = replace(stats, reference_ms=float(np.median(level)), relative=ratio)
            previous = results[i]
            if previous is None or stats.rel_iqr < previous.rel_iqr:
                results[i] = stats
            if stats.rel_iqr > protocol.max_rel_iqr:
                still.append(i)
        pending = still
        if not pending:
            break
    out = [summarize_flagged(s, protocol.max_retries + 1) if i in pending else s for i, s in enumerate(results)]
    return out, summarize(reference_samples) if reference_samples else None  # type: ignore[return-value]

"""The measurement protocol on fake runners with injected noise (no real timing involved)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenas.hardware.protocol import Protocol, measure, measure_interleaved, summarize


class FakeRunner:
    """Returns latencies drawn around ``base_ms``: ``noise`` relative jitter plus occasional 5x outliers."""

    def __init__(self, base_ms, noise=0.01, outliers=0.0, seed=0, calm_after=None):
        self.base, self.noise, self.outliers = base_ms, noise, outliers
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.calm_after = calm_after

    def __call__(self):
        self.calls += 1
        noise = self.noise if self.calm_after is None or self.calls <= self.calm_after else 0.005
        value = self.base * (1 + noise * self.rng.standard_normal())
        if self.rng.random() < self.outliers:
            value *= 5
        return value


def test_summary_statistics():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.median_ms, s.min_ms, s.n) == (3.0, 1.0, 5)
    assert s.iqr_ms == pytest.approx(2.0) and s.mean_ms == pytest.approx(22.0)


def test_median_is_robust_to_outliers():
    stats = measure(FakeRunner(10.0, noise=0.01, outliers=0.1), Protocol(warmup=2, repeats=200))
    assert stats.median_ms == pytest.approx(10.0, rel=0.01)
    assert stats.mean_ms > 11  # the mean is not
    assert not stats.flagged and stats.attempts == 1


def test_warmup_runs_are_not_counted():
    runner = FakeRunner(1.0)
    stats = measure(runner, Protocol(warmup=7, repeats=20))
    assert runner.calls == 27 and stats.n == 20


def test_noisy_runner_is_remeasured_then_flagged():
    runner = FakeRunner(5.0, noise=0.5)
    stats = measure(runner, Protocol(warmup=0, repeats=30, max_rel_iqr=0.05, max_retries=2))
    assert stats.flagged and stats.attempts == 3 and runner.calls == 90
    assert stats.rel_iqr > 0.05


def test_a_noise_burst_is_remeasured_and_not_flagged():
    runner = FakeRunner(5.0, noise=0.5, calm_after=30)
    stats = measure(runner, Protocol(warmup=0, repeats=30, max_rel_iqr=0.05, max_retries=2))
    assert not stats.flagged and stats.attempts == 2
    assert stats.median_ms == pytest.approx(5.0, rel=0.01)


def test_interleaved_measures_round_robin():
    order = []

    def make(i, base):
        def run():
            order.append(i)
            return base

        return run

    stats = measure_interleaved([make(0, 1.0), make(1, 2.0), make(2, 3.0)], Protocol(warmup=1, repeats=4))
    assert order[:6] == [0, 1, 2, 0, 1, 2]
    assert [s.median_ms for s in stats] == [1.0, 2.0, 3.0]


def test_interleaved_remeasures_only_the_noisy_runner():
    calm, noisy = FakeRunner(1.0, noise=0.001, seed=1), FakeRunner(1.0, noise=0.6, seed=2)
    stats = measure_interleaved([calm, noisy], Protocol(warmup=0, repeats=20, max_rel_iqr=0.05, max_retries=1))
    assert calm.calls == 20 and noisy.calls == 40
    assert not stats[0].flagged and stats[1].flagged


def test_median_over_loads_reloads_the_arch(monkeypatch):
    """median_latency_ms loads the arch ``loads`` times and keeps the median of the per-load medians."""
    import importlib
    from types import SimpleNamespace

    # the package re-exports the function ``measure`` under the module's name
    measure_module = importlib.import_module("edgenas.hardware.measure")

    per_load = iter([4.0, 1.0, 2.5, 9.0])
    calls = []

    def fake_measure_arch(spec, runtime, protocol, *, energy):
        calls.append((spec, energy))
        return SimpleNamespace(latency=SimpleNamespace(median_ms=next(per_load)))

    monkeypatch.setattr(measure_module, "measure_arch", fake_measure_arch)
    assert measure_module.median_latency_ms("arch", None, loads=3) == 2.5
    assert calls == [("arch", False)] * 3
    with pytest.raises(ValueError, match="at least 1"):
        measure_module.median_latency_ms("arch", None, loads=0)

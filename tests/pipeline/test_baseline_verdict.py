"""The baseline's one-sentence verdict: whether the search paid off, and whether each gap is resolved by the seeds."""

from __future__ import annotations

from edgenas.pipeline.stages_baseline import verdict


def _row(top1: float, std: float, n: int, **extra) -> dict:
    return {"top1": top1, "top1_std": std, "n": n, **extra}


def test_a_gap_is_resolved_only_beyond_two_standard_errors_with_two_seeds_or_more() -> None:
    found = _row(60.0, 0.5, 3)
    text = verdict(found, _row(55.0, 2.0, 9), _row(59.5, 0.5, 3, width=1.5, meets=True))
    assert text.startswith("The search paid off") and "(3 seeds)" in text
    assert "+5.0 points vs the random archs' mean over 9 trainings (55.0%, resolved)" in text
    assert "+0.5 points vs MobileNetV2 x1.5 (59.5%, not resolved)" in text
    lost = verdict(_row(50.0, 0.0, 1), _row(52.0, 0.0, 1), None)
    assert lost.startswith("The search did not pay off") and "not resolved" in lost and "MobileNetV2" not in lost
    narrow = verdict(found, _row(55.0, 2.0, 9), _row(40.0, 1.0, 3, width=0.25, meets=False))
    assert "none meets the found arch's latency" in narrow

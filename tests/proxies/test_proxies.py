"""Accuracy proxies: BTE on a hand-computed table, TSE, the Jacobian score, fixed batches, and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import ProxyError
from edgenas.proxies import ProbeSettings, Trace, bte, get_proxy, jacobian_score, list_proxies, probe, settings_for
from edgenas.proxies.evaluate import probe_spec
from edgenas.spaces import get_space
from edgenas.train.data import ArrayDataset, FixedOrderBatches, ImageData


def test_bte_matches_a_hand_computed_table():
    losses = np.array([[2.0, 1.0, 4.0], [1.0, 0.5, 5.0], [0.5, 0.25, 4.0]])
    # batch 1: (2-1)/2 * (1-0.5)/1 = 0.25; batch 2: 0.5 * 0.5 = 0.25; batch 3: (4-5)/4 * (5-4)/5 = -0.05
    assert bte(losses) == pytest.approx(0.45)
    assert bte(losses[:2]) == pytest.approx(0.5 + 0.5 - 0.25)
    trace = Trace(losses, [1.0, 2.0, 3.0, 4.0])
    assert get_proxy("bte").score(trace).value == pytest.approx(0.45)
    assert get_proxy("bte").score(trace, 2).value == pytest.approx(0.75)
    assert get_proxy("tse").score(trace).value == pytest.approx(-losses.sum())
    assert get_proxy("tse").score(trace, 1).value == pytest.approx(-7.0)
    assert get_proxy("tse-e").score(trace).value == pytest.approx(-4.75)
    assert get_proxy("jacobian").score(trace).value == 1.0 and get_proxy("jacobian").score(trace, 3).value == 4.0
    # clamped: batch 3's improvements -0.25 and +0.2 become 0 and 0.2, so it adds 0 instead of -0.05
    assert get_proxy("bte-clamped").score(trace).value == pytest.approx(0.5)
    assert get_proxy("bte-clamped").score(trace, 2).value == pytest.approx(0.5 + 0.5 + 0.0)


def test_budgets_outside_a_proxy_or_a_trace_are_refused():
    trace = Trace(np.ones((2, 4)), [])
    with pytest.raises(ProxyError, match="at least 2"):
        get_proxy("bte").score(trace, 1)
    with pytest.raises(ProxyError, match="holds 2 epochs"):
        get_proxy("tse").score(trace, 3)
    with pytest.raises(ProxyError, match="holds -1"):
        get_proxy("jacobian").score(trace)
    with pytest.raises(ProxyError, match="unknown proxy 'nope'; proxies: bte, bte-clamped, jacobian, tse, tse-e"):
        get_proxy("nope")
    assert list_proxies() == ["bte", "bte-clamped", "jacobian", "tse", "tse-e"]
    assert settings_for(["jacobian"], 3).epochs == 0 and settings_for(["bte"], 3).jacobian is False


def _tiny_data(n: int = 48) -> ImageData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(n) % 4
    ds = ArrayDataset(images, labels)
    return ImageData("tiny", ds, ds, labels, labels, list("abcd"), 8, (0.5,) * 3, (0.25,) * 3)


def test_fixed_order_batches_are_identical_across_epochs():
    batches = FixedOrderBatches(_tiny_data(), 16)
    first, second = list(batches), list(batches)
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(first[0][0], first[1][0])


def test_probe_records_every_batch_of_every_epoch_and_learns():
    batches = list(FixedOrderBatches(_tiny_data(), 16))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    trace = probe(model, batches, ProbeSettings(epochs=4, lr=0.05, jacobian_images=8))
    assert trace.losses.shape == (4, 3) and len(trace.jacobian) == 5
    assert trace.losses[-1].mean() < trace.losses[0].mean()
    assert Trace.from_dict(trace.as_dict()).losses.tolist() == trace.losses.tolist()
    untrained = probe(model, batches, ProbeSettings(epochs=0, jacobian_images=8))  # the training-free proxies' probe
    assert untrained.losses.shape == (0, 0) and len(untrained.jacobian) == 1
    assert get_proxy("jacobian").score(untrained).value == untrained.jacobian[0]


def test_jacobian_score_rewards_inputs_told_apart():
    x = torch.randn(16, 3, 8, 8)
    distinct = nn.Sequential(nn.Flatten(), nn.Linear(192, 256), nn.ReLU(), nn.Linear(256, 10))
    linear = nn.Sequential(nn.Flatten(), nn.Linear(192, 10))  # the same Jacobian for every image
    assert jacobian_score(distinct, x) > jacobian_score(linear, x) + 1e3


def test_probe_of_a_spec_is_reproducible_with_a_seed():
    space = get_space("nb201", channels=4, cells_per_stage=1, resolution=8, num_classes=4)
    spec = space.sample(seed=0)[0]
    batches = list(FixedOrderBatches(_tiny_data(), 16))
    a = probe_spec(spec, batches, ProbeSettings(epochs=2, jacobian_images=8), seed=3)
    b = probe_spec(spec, batches, ProbeSettings(epochs=2, jacobian_images=8), seed=3)
    assert np.array_equal(a.losses, b.losses) and a.jacobian == b.jacobian

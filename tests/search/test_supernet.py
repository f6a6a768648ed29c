"""The shared supernet: one op per layer in single-path mode, straight-through gradients, seeded paths."""

from __future__ import annotations

import pytest
import torch
from _toy import toy_space

from edgenas.errors import SearchError
from edgenas.search.supernet import ChoiceLayer, Supernet
from edgenas.spaces import get_space


def _count_calls(supernet: Supernet) -> dict[tuple[int, int], int]:
    calls: dict[tuple[int, int], int] = {}
    for module in supernet.modules():
        if isinstance(module, ChoiceLayer):
            for key, op in module.candidates.items():

                def hook(*_, key=(module.layer, int(key))):
                    calls[key] = calls.get(key, 0) + 1

                op.register_forward_hook(hook)
    return calls


def test_single_path_runs_exactly_one_op_per_layer() -> None:
    space = toy_space()
    supernet = Supernet(space)
    calls = _count_calls(supernet)
    x = torch.randn(2, 3, 32, 32)
    for step in range(3):
        calls.clear()
        supernet.sample_single_path(step, tau=1.0)
        supernet(x)
        assert sorted(calls) == [(layer, k) for layer, k in enumerate(supernet.state.chosen)]
        assert all(n == 1 for n in calls.values())


def test_multi_path_runs_every_allowed_op() -> None:
    space = toy_space()
    supernet = Supernet(space)
    calls = _count_calls(supernet)
    supernet.sample_multi_path(0, tau=1.0)
    supernet(torch.randn(1, 3, 32, 32))
    assert len(calls) == int(space.mask().sum())


def test_straight_through_gradient_matches_the_softmax_jacobian() -> None:
    space = toy_space()
    supernet = Supernet(space, seed=3)
    with torch.no_grad():
        supernet.alpha.normal_()
    tau = 0.7
    weights = supernet.sample_single_path(5, tau)
    assert torch.equal(
        weights.detach(), torch.nn.functional.one_hot(torch.tensor(supernet.state.chosen), space.num_ops).float()
    )
    c = torch.randn_like(weights)
    (weights * c).sum().backward()
    # analytic: d/d alpha_lk of sum_j c_lj soft_lj = soft_lk (c_lk - sum_j soft_lj c_lj) / tau
    soft = torch.softmax((supernet.masked_logits().detach() + supernet._gumbel(5)) / tau, dim=-1)
    expected = soft * (c - (soft * c).sum(-1, keepdim=True)) / tau
    assert torch.allclose(supernet.alpha.grad, expected, atol=1e-6)


def test_paths_are_a_function_of_seed_and_step() -> None:
    # what keeps every rank of a distributed search on the same path without communication
    a, b = Supernet(toy_space(), seed=1), Supernet(toy_space(), seed=1)
    paths_a = [list(a.sample_single_path(s, 1.0).argmax(-1)) for s in range(5)]
    paths_b = [list(b.sample_single_path(s, 1.0).argmax(-1)) for s in range(5)]
    assert paths_a == paths_b
    assert paths_a[0] != paths_a[1]
    c = Supernet(toy_space(), seed=2)
    assert [list(c.sample_single_path(s, 1.0).argmax(-1)) for s in range(5)] != paths_a


def test_disallowed_ops_are_never_sampled_or_derived() -> None:
    space = toy_space()
    supernet = Supernet(space)
    mask = space.mask()
    with torch.no_grad():
        supernet.alpha.fill_(0.0)
        supernet.alpha[~mask] = 100.0  # even a huge logit cannot select a masked op
    for step in range(10):
        supernet.sample_single_path(step, 1.0)
        assert all(mask[layer, k] for layer, k in enumerate(supernet.state.chosen))
    assert all(mask[layer, k] for layer, k in enumerate(supernet.derived_spec().choices))


@pytest.mark.parametrize("name", ["fbnet", "nb201"])
def test_other_spaces_build_and_fix_a_path(name: str) -> None:
    space = get_space(name, **({"width": 0.25} if name == "fbnet" else {"channels": 4, "cells_per_stage": 1}))
    supernet = Supernet(space)
    spec = space.sample(0)[0]
    supernet.fix_path(spec)
    out = supernet(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_forward_without_a_path_is_a_clear_error() -> None:
    with pytest.raises(SearchError, match="no path"):
        Supernet(toy_space())(torch.randn(1, 3, 32, 32))


def test_fair_paths_run_every_allowed_op_of_every_layer_once() -> None:
    """Thesis Alg. 1 at uniform alpha: K paths without replacement per layer; a layer with fewer ops (the toy space
    masks skip where shapes change) fills its extra paths with its own ops."""
    space = toy_space()
    supernet = Supernet(space, seed=3)
    mask = space.mask()
    paths = supernet.fair_paths(step=7)
    k = int(mask.sum(-1).max())
    assert len(paths) == k and all(len(p) == space.num_layers for p in paths)
    for layer in range(space.num_layers):
        drawn = [path[layer] for path in paths]
        allowed = set(torch.nonzero(mask[layer]).flatten().tolist())
        assert set(drawn) == allowed  # every allowed op runs, no masked one
        if len(allowed) == k:
            assert sorted(drawn) == sorted(allowed)  # exactly once each
    assert int(mask.sum(-1).min()) < k  # the toy space exercises the filling
    assert supernet.fair_paths(7) == paths and supernet.fair_paths(8) != paths
    assert Supernet(space, seed=4).fair_paths(7) != paths


def test_straight_through_weight_gives_the_gradient_of_a_plain_product() -> None:
    """The single path's output is the op's output (its weight is 1) and alpha's gradient is that of out * weight."""
    from edgenas.search.supernet import _ScaledByOne

    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    weight = torch.ones((), requires_grad=True)
    upstream = torch.randn(2, 3, 4, 4, generator=g)
    (_ScaledByOne.apply(out, weight) * upstream).sum().backward()
    got = out.grad.clone(), weight.grad.clone()
    out.grad, weight.grad = None, None
    (out * weight * upstream).sum().backward()
    torch.testing.assert_close(got[0], out.grad)
    torch.testing.assert_close(got[1], weight.grad)

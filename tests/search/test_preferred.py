"""The arch a search prefers at a target (``edgenas.search.preferred``), and how the closed loop reads alpha: by a
derivation rule, never proposing a network the space cannot build, optionally seeking the preferred arch."""

from __future__ import annotations

import itertools

import pytest
import torch
from _device import alpha_preferring
from _toy import lut_predictor, toy_predictor, toy_space

from edgenas.search import preferred
from edgenas.search.closed_loop import close_loop, log_preference
from edgenas.search.preferred import preferred_near, score, walk_to_band
from edgenas.spaces import get_space

BAND = 0.02


def _nb201_setup(seed: int = 0):
    """nb201 (15,625 cells, enumerated), a cost per op with ``none`` free, and random logits."""
    space = get_space("nb201")
    g = torch.Generator().manual_seed(seed)
    costs = torch.rand(space.num_layers, space.num_ops, generator=g, dtype=torch.float64)
    costs[:, space.op_names.index("none")] = 0.0

    def predict(hots: torch.Tensor) -> torch.Tensor:
        return 1.0 + (hots.double() * costs).sum((-1, -2))

    alpha = torch.randn(space.num_layers, space.num_ops, generator=g)
    return space, predict, alpha


def test_the_preferred_arch_is_the_best_scoring_valid_arch_predicted_in_the_band() -> None:
    space, predict, alpha = _nb201_setup()
    preference = log_preference(alpha, space)
    value = 3.0
    found = preferred_near(space, preference, predict, value, BAND)
    best, best_score = None, -float("inf")
    for choices in itertools.product(*space.allowed_ops):  # brute force, one arch at a time
        spec = space.make_spec(list(choices))
        hot = space.one_hot(spec)
        if abs(float(predict(hot[None])[0]) / value - 1) <= BAND and space.is_valid_network(spec):
            s = float(score(hot[None], preference)[0])
            if s > best_score:
                best, best_score = spec, s
    assert found is not None and space.from_one_hot(found) == best
    assert preferred_near(space, preference, predict, 1e6, BAND) is None  # nothing predicted there


def test_a_large_space_is_walked_to_the_band_from_likely_archs(monkeypatch) -> None:
    space, predictor = toy_space(), toy_predictor()
    monkeypatch.setattr(preferred, "ENUMERATE_LIMIT", 10)  # force the walks
    arch = space.sample(seed=5, n=1)[0]
    alpha = alpha_preferring(space, arch, seed=5)
    preference = log_preference(alpha, space)
    with torch.no_grad():
        value = 0.5 * (float(predictor(space.one_hot(arch)[None])[0]) + 1.0)  # well below the preferred arch
    found = preferred_near(space, preference, predictor, value, BAND, seed=1)
    assert found is not None and abs(float(predictor(found[None])[0]) / value - 1) <= BAND
    walked = walk_to_band(space, space.one_hot(arch), preference, predictor, value, BAND)
    # the best of several walks scores at least as well as the walk from the argmax alone
    assert float(score(found[None], preference)[0]) >= float(score(walked[None], preference)[0]) - 1e-6


def test_dartss_rule_scores_a_zero_op_as_its_layers_weakest_other_op() -> None:
    space = get_space("nb201")
    alpha = torch.randn(space.num_layers, space.num_ops, generator=torch.Generator().manual_seed(2))
    none = space.op_names.index("none")
    plain, rule = log_preference(alpha, space), log_preference(alpha, space, "nonzero")
    others = [k for k in range(space.num_ops) if k != none]
    expected = torch.log_softmax(alpha[:, others], -1)
    assert torch.allclose(rule[:, others], expected, atol=1e-6)
    assert torch.allclose(rule[:, none], expected.min(-1).values, atol=1e-6)
    assert torch.allclose(plain, torch.log_softmax(alpha, -1), atol=1e-6)


@pytest.mark.parametrize("seek", [False, True])
def test_the_loop_never_proposes_a_cell_cut_off_by_none(seek: bool) -> None:
    """alpha loves `none` and T asks for a cheap cell: every proposal is still a connected cell."""
    space, predict, _ = _nb201_setup(1)
    none = space.op_names.index("none")
    alpha = torch.zeros(space.num_layers, space.num_ops)
    alpha[:, none] = 3.0
    start = space.make_spec(["nor_conv_3x3"] * space.num_layers)

    def measure(spec) -> float:
        return float(predict(space.one_hot(spec)[None])[0]) * 1.03

    predictor = _table_predictor(space, predict)
    result = close_loop(start, alpha, predictor, 1.6, measure, budget=8, seek_preferred=seek)
    assert all(space.is_valid_network(space.parse(m["arch"])) for m in result.measurements)
    assert any(m["arch"].count("none") > 0 for m in result.measurements), "the test should tempt the loop"


def test_seeking_lands_on_the_arch_alpha_prefers_most_at_t() -> None:
    """From a far-away start on an exact device, the seeking loop ends on the globally preferred cell at T, which
    scores at least as high as what the walk alone finds."""
    space, predict, alpha = _nb201_setup(3)
    predictor = _table_predictor(space, predict)
    preference = log_preference(alpha, space)
    start = space.derive(alpha)
    value = 0.6 * float(predict(space.one_hot(start)[None])[0])

    def measure(spec) -> float:
        return float(predict(space.one_hot(spec)[None])[0])

    sought = close_loop(start, alpha, predictor, value, measure, seek_preferred=True)
    walked = close_loop(start, alpha, predictor, value, measure)
    best = preferred_near(space, preference, predict, value, BAND)
    assert sought.within_tolerance and walked.within_tolerance
    assert sought.chosen == space.from_one_hot(best)
    chosen_scores = [float(score(space.one_hot(r.chosen)[None], preference)[0]) for r in (sought, walked)]
    assert chosen_scores[0] >= chosen_scores[1]


def _table_predictor(space, predict):
    """A LUT predictor whose values are exactly ``predict``'s (an additive cost per op)."""
    eye = torch.eye(space.num_ops)
    base = float(predict(torch.zeros(1, space.num_layers, space.num_ops))[0])
    table = torch.zeros(space.num_layers, space.num_ops)
    for layer in range(space.num_layers):
        hots = torch.zeros(space.num_ops, space.num_layers, space.num_ops)
        hots[:, layer] = eye
        table[layer] = (predict(hots) - base).float()
    return lut_predictor(space, table, base, device="table")

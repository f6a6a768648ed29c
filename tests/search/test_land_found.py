"""Landing an evolved result (``edgenas.search.landing.land_found``): its preference is the fewest changes from the
found arch, and the closed loop meets T with the least change the device allows."""

from __future__ import annotations

import pytest
import torch
from _device import SimulatedDevice
from _toy import toy_space

from edgenas.errors import SearchError
from edgenas.search.closed_loop import Band
from edgenas.search.landing import DISTANCE_LOGIT, LandingPolicy, land_found, preference_for
from edgenas.search.preferred import score


def test_the_preference_ranks_archs_by_their_distance_from_the_found_one() -> None:
    space = toy_space()
    found = space.sample(seed=1, n=1)[0]
    others = space.sample(seed=2, n=40)
    hots = torch.stack([space.one_hot(s) for s in [found, *others]])
    changed = [sum(a != b for a, b in zip(found.choices, s.choices, strict=True)) for s in [found, *others]]
    assert score(hots, preference_for(found)).tolist() == pytest.approx([-DISTANCE_LOGIT * d for d in changed])
    steps = [sum(abs(a - b) for a, b in zip(found.choices, s.choices, strict=True)) for s in [found, *others]]
    assert score(hots, preference_for(found, ordered=True)).tolist() == pytest.approx(
        [-DISTANCE_LOGIT * d for d in steps]
    )


def test_a_found_arch_over_t_is_landed_under_it_with_few_changes() -> None:
    space = toy_space()
    device = SimulatedDevice(space, seed=4, drift=0.0)
    predictor = device.fitted_lut(200, seed=4)
    found = space.sample(seed=6, n=1)[0]
    band = Band(0.9 * device.now(found), 0.02, "le")
    loop = land_found(found, predictor, band, device, LandingPolicy())
    assert loop.within_tolerance and device.now(loop.chosen) <= band.value * 1.02
    changed = sum(a != b for a, b in zip(found.choices, loop.chosen.choices, strict=True))
    assert 1 <= changed <= space.num_layers // 2
    once = land_found(found, predictor, band, device, LandingPolicy("measure"))
    assert len(once.measurements) == 1 and once.chosen == found and not once.within_tolerance
    with pytest.raises(SearchError, match="alpha"):
        land_found(found, predictor, band, device, LandingPolicy("correct"))

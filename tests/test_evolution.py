"""The evolutionary engine: feasible candidates only, seeded, improves a toy objective, resumes without rescoring."""

from __future__ import annotations

import pytest

from edgenas.errors import EvolutionError
from edgenas.evolution import EvolutionConfig, evolve, pareto_front
from edgenas.spaces import get_space

SPACE = get_space("mbv2-cifar", width=0.25)
CONFIG = EvolutionConfig(population=12, iterations=8, top_k=6, seed=1)


def _ops_score(specs):
    """Toy objective: the number of layers with kernel 7 (op names k7e3, k7e6)."""
    return [sum(SPACE.op_names[c].startswith("k7") for c in s.choices) for s in specs]


def _few_skips(spec):
    return sum(SPACE.op_names[c] == "skip" for c in spec.choices) <= 2


def test_every_candidate_is_feasible_and_the_objective_improves():
    calls = []

    def fitness(specs):
        calls.append(len(specs))
        return _ops_score(specs)

    result = evolve(SPACE, fitness, _few_skips, CONFIG)
    assert all(_few_skips(c.spec) for c in result.history)
    assert len({c.spec for c in result.history}) == len(result.history) == sum(calls) == result.scored
    first = max(_ops_score([SPACE.parse(a) for a in result.generations[0]["population"]]))
    assert result.best.fitness >= first + 3
    assert [g["best"] for g in result.generations] == sorted(g["best"] for g in result.generations)
    assert len(result.history) <= CONFIG.population + (CONFIG.iterations - 1) * (CONFIG.population - CONFIG.top_k)


def test_the_same_seed_gives_the_same_search_and_another_seed_another():
    a = evolve(SPACE, _ops_score, _few_skips, CONFIG)
    b = evolve(SPACE, _ops_score, _few_skips, CONFIG)
    c = evolve(SPACE, _ops_score, _few_skips, EvolutionConfig(population=12, iterations=8, top_k=6, seed=2))
    assert [x.spec for x in a.history] == [x.spec for x in b.history]
    assert [x.spec for x in a.history] != [x.spec for x in c.history]


def test_a_killed_search_resumes_without_rescoring(tmp_path):
    record = tmp_path / "evaluated.jsonl"
    full = evolve(SPACE, _ops_score, _few_skips, CONFIG)

    class Killed(Exception):
        pass

    budget = {"left": 30}

    def dying(specs):
        if budget["left"] < len(specs):
            raise Killed
        budget["left"] -= len(specs)
        return _ops_score(specs)

    with pytest.raises(Killed):
        evolve(SPACE, dying, _few_skips, EvolutionConfig(**{**CONFIG.__dict__, "batch": 5}), record=record)
    before = len(record.read_text().splitlines())
    assert 0 < before <= 30
    rescored = []

    def counting(specs):
        rescored.extend(specs)
        return _ops_score(specs)

    resumed = evolve(SPACE, counting, _few_skips, EvolutionConfig(**{**CONFIG.__dict__, "batch": 5}), record=record)
    assert [x.spec for x in resumed.history] == [x.spec for x in full.history]
    assert resumed.scored == len(rescored) == len(full.history) - before
    assert not {s.choices for s in rescored} & {x.spec.choices for x in resumed.history[:before]}


def test_an_empty_feasible_set_and_bad_settings_are_refused():
    with pytest.raises(EvolutionError, match="no architecture of mbv2-cifar satisfied the constraint"):
        evolve(SPACE, _ops_score, lambda s: False, EvolutionConfig(population=4, iterations=1, top_k=2, max_tries=5))
    with pytest.raises(EvolutionError, match="top_k"):
        evolve(SPACE, _ops_score, None, EvolutionConfig(population=4, top_k=4))
    with pytest.raises(EvolutionError, match="does not satisfy"):
        evolve(
            SPACE, _ops_score, _few_skips, CONFIG, initial=[SPACE.make_spec(["k3e3"] + ["skip"] * 3 + ["k3e3"] * 17)]
        )


def test_cost_gives_a_pareto_front():
    result = evolve(SPACE, _ops_score, None, CONFIG, cost=lambda specs: [float(sum(s.choices)) for s in specs])
    front = result.pareto
    assert front == pareto_front(result.history) and len(front) >= 2
    costs = [c.cost for c in front]
    assert costs == sorted(costs) and [c.fitness for c in front] == sorted(c.fitness for c in front)
    for c in result.history:  # every candidate off the front is matched or beaten on both objectives by one on it
        assert c in front or any(f.cost <= c.cost and f.fitness >= c.fitness for f in front)
    for f in front:  # and nothing dominates a front member
        assert not any(c.cost <= f.cost and c.fitness > f.fitness for c in result.history)

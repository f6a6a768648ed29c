"""Domino's search pieces: the evolution keeps to the latency constraint, random masks meet T, pair tables resume
without training anything twice and refuse another network's pairs."""

from __future__ import annotations

import json

import pytest

from edgenas.compress import domino
from edgenas.compress.domino import PairSchedule, PairTable, collect_pairs, proxy_tasks, random_masks, search_masks
from edgenas.errors import DominoError
from edgenas.evolution import EvolutionConfig
from edgenas.spaces import get_space, spec_to_dict
from edgenas.spaces.domino import KEEP, mask_space


@pytest.fixture(scope="module")
def space():
    return mask_space({"arch": spec_to_dict(get_space("mbv2-cifar", width=0.25, resolution=16).sample(0)[0])})


def fake_latency(specs):
    """1 ms per kept block plus 0.4 per grafted one: grafting pays everywhere."""
    return [1.0 + sum(1.0 if c == KEEP else 0.4 for c in s.choices) for s in specs]


def fake_accuracy(specs):
    """Kept blocks early in the network matter more."""
    return [sum((c == KEEP) * (1.0 + 0.1 * (len(s.choices) - i)) for i, c in enumerate(s.choices)) for s in specs]


def test_search_respects_the_latency_constraint_and_prefers_accuracy(space, tmp_path) -> None:
    target = 1.0 + 0.4 * space.num_layers + 0.6 * 6  # room for six kept blocks
    config = EvolutionConfig(population=12, iterations=6, top_k=4, seed=0)
    result = search_masks(space, fake_accuracy, fake_latency, target, config, record=tmp_path / "e.jsonl")
    assert result.history and all(c.cost <= target + 1e-9 for c in result.history)
    randoms = random_masks(space, fake_latency, target, 8, seed=0)
    assert randoms and all(ms <= target for ms in fake_latency(randoms))
    assert result.best.fitness >= max(fake_accuracy(randoms))
    assert result.best.spec.choices.count(KEEP) == 6  # uses the whole budget
    with pytest.raises(DominoError, match="no grafting mask"):
        search_masks(space, fake_accuracy, fake_latency, 0.5, config)


def test_pair_tables_resume_and_refuse_other_networks(space, tmp_path, monkeypatch) -> None:
    trained = []

    def fake_train(space_, spec, data, schedule, start=None):
        trained.append(spec.choices)
        return [10.0 + e + spec.choices.count(KEEP) for e in range(schedule.epochs)]

    monkeypatch.setattr(domino, "train_mask", fake_train)
    schedule = PairSchedule(epochs=3, images=20, test_images=20, resolution=16, batch_size=10)
    specs = space.sample(seed=1, n=5)
    first = collect_pairs(PairTable(tmp_path / "p.jsonl", space), specs[:3], None, schedule, "proxy")
    assert len(trained) == 3
    again = collect_pairs(PairTable(tmp_path / "p.jsonl", space), specs, None, schedule, "proxy")
    assert len(trained) == 5 and all(again[s.choices] == first[s.choices] for s in specs[:3])
    # another schedule is another set of pairs
    collect_pairs(PairTable(tmp_path / "p.jsonl", space), specs[:1], None, PairSchedule(1, 20, 20, 16, 10), "proxy")
    assert len(trained) == 6
    tasks = proxy_tasks(again)
    assert [t.name for t in tasks] == ["proxy@1ep", "proxy@2ep", "proxy@3ep"] and len(tasks[0].y) == 5
    other = get_space("domino", model="torchvision:resnet18", num_classes=10)
    with pytest.raises(DominoError, match="another network"):
        PairTable(tmp_path / "p.jsonl", other)
    assert all(json.loads(line)["space_hash"] == space.config_hash for line in (tmp_path / "p.jsonl").open())


def test_a_real_pair_is_an_accuracy_per_epoch(space) -> None:
    from edgenas.train import load_cifar10

    schedule = PairSchedule(epochs=2, images=20, test_images=20, resolution=16, batch_size=10)
    top1 = domino.train_mask(space, space.sample(seed=0)[0], load_cifar10("sample"), schedule)
    assert len(top1) == 2 and all(0 <= a <= 100 for a in top1)

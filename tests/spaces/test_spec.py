"""Property-based tests of specs: every form round-trips, and sampling/mutation/crossover stay inside the space."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgenas.errors import ArchError, SpaceMismatchError, SpecFileError
from edgenas.spaces import (
    ArchSpec,
    get_space,
    graph_features,
    load_specs,
    save_specs,
    spec_from_json,
    spec_to_json,
)

SPACES = ["mbv2", "mbv2-cifar", "fbnet", "nb201"]
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def specs(draw, space_name: str | None = None):
    """A valid spec drawn op by op from the allowed ops of each layer."""
    space = get_space(space_name or draw(st.sampled_from(SPACES)))
    return space.make_spec([draw(st.sampled_from(ops)) for ops in space.allowed_ops])


def assert_valid(spec: ArchSpec) -> None:
    space = get_space(spec.space)
    assert spec.space_hash == space.config_hash
    assert len(spec.choices) == space.num_layers
    for layer, choice in enumerate(spec.choices):
        assert choice in space.allowed_ops[layer]


@settings(max_examples=200, deadline=None)
@given(specs())
def test_string_json_and_one_hot_round_trip(spec):
    space = get_space(spec.space)
    assert space.parse(str(spec)) == spec
    assert spec_from_json(spec_to_json(spec)) == spec
    assert space.from_one_hot(space.one_hot(spec)) == spec
    assert hash(space.parse(str(spec))) == hash(spec)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(SPACES), seeds, st.integers(1, 5))
def test_sampling_yields_only_valid_specs_and_is_seeded(space_name, seed, n):
    space = get_space(space_name)
    drawn = space.sample(seed=seed, n=n)
    assert len(drawn) == n
    for spec in drawn:
        assert_valid(spec)
    assert space.sample(seed=seed, n=n) == drawn


@settings(max_examples=100, deadline=None)
@given(st.data(), seeds, st.integers(1, 4))
def test_mutation_stays_valid_and_changes_exactly_the_asked_layers(data, seed, num_layers):
    spec = data.draw(specs())
    space = get_space(spec.space)
    child = space.mutate(spec, seed=seed, num_layers=num_layers)
    assert_valid(child)
    changed = sum(a != b for a, b in zip(spec.choices, child.choices, strict=True))
    assert changed == num_layers


@settings(max_examples=100, deadline=None)
@given(st.data(), seeds)
def test_crossover_stays_valid_and_takes_each_layer_from_a_parent(data, seed):
    name = data.draw(st.sampled_from(SPACES))
    a, b = data.draw(specs(name)), data.draw(specs(name))
    child = get_space(name).crossover(a, b, seed=seed)
    assert_valid(child)
    assert all(c in (x, y) for c, x, y in zip(child.choices, a.choices, b.choices, strict=True))


def test_soft_encodings_decode_to_the_best_allowed_op():
    space = get_space("mbv2-cifar")
    logits = torch.randn(4, space.num_layers, space.num_ops)
    logits[:, :, space.op_names.index("skip")] = 100.0  # skip wins everywhere it is allowed
    for spec in space.from_one_hot(logits.softmax(-1)):
        assert_valid(spec)
        for layer, choice in enumerate(spec.choices):
            assert (choice == space.op_names.index("skip")) == (len(space.allowed_ops[layer]) == space.num_ops)


def test_one_hot_of_a_batch_and_its_mask():
    space = get_space("mbv2-cifar")
    batch = space.sample(seed=1, n=3)
    x = space.one_hot(batch)
    assert x.shape == (3, 21, 7)
    assert torch.equal(x.sum(-1), torch.ones(3, 21))
    assert not (x.bool() & ~space.mask()).any()
    assert int((~space.mask()).sum()) == 6  # skip is masked at the 6 shape-changing layers


def test_graph_features_are_differentiable_and_the_adjacency_is_a_dag():
    for name in SPACES:
        space = get_space(name)
        spec = space.sample(seed=0)[0]
        graph = space.graph(spec)
        n = space.num_layers + 2
        assert graph.adjacency.shape == (n, n)
        assert graph.features.shape == (n, space.num_ops + 2)
        assert torch.equal(graph.adjacency, graph.adjacency.triu(1))  # node order is topological
        soft = torch.rand(2, space.num_layers, space.num_ops, requires_grad=True)
        graph_features(soft).sum().backward()
        assert torch.equal(soft.grad, torch.ones_like(soft))


def test_nb201_graph_connects_edges_through_their_nodes():
    adj = get_space("nb201").graph_adjacency()
    # nodes: 0 input, 1..6 edges (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), 7 output
    assert adj[0].nonzero().flatten().tolist() == [1, 2, 4]
    assert adj[1].nonzero().flatten().tolist() == [3, 5]  # node 1 feeds edges 2<-1 and 3<-1
    assert adj[2].nonzero().flatten().tolist() == [6]
    assert adj[:, 7].nonzero().flatten().tolist() == [4, 5, 6]


def test_validation_names_the_layer_and_the_op():
    space = get_space("mbv2-cifar")
    tokens = str(space.sample(seed=0)[0]).split("-")
    tokens[4] = "skip"  # stage2.block1: 32 -> 56 channels, stride 2
    with pytest.raises(ArchError, match=r"layer 4 \(stage2.block1\): op 'skip' is not allowed.*32->56 channels"):
        space.parse("-".join(tokens))
    tokens[4] = "k9e6"
    with pytest.raises(ArchError, match=r"layer 4 \(stage2.block1\): unknown op 'k9e6'"):
        space.parse("-".join(tokens))
    with pytest.raises(ArchError, match="expected 21"):
        space.parse("-".join(tokens[:-1]))
    with pytest.raises(ArchError, match=r"edge 2<-1"):
        get_space("nb201").parse("|skip_connect~0|+|none~0|none~2|+|none~0|none~1|none~2|")


def test_a_spec_of_another_configuration_is_refused():
    spec = get_space("mbv2-cifar").sample(seed=0)[0]
    with pytest.raises(SpaceMismatchError):
        get_space("mbv2-cifar", width=0.5).build(spec)


def test_spec_files_round_trip_and_report_bad_content(tmp_path):
    space = get_space("fbnet", width=0.5)
    drawn = space.sample(seed=3, n=4)
    assert load_specs(save_specs(tmp_path / "a.jsonl", drawn)) == drawn
    assert load_specs(save_specs(tmp_path / "one.json", drawn[:1])) == drawn[:1]
    record = json.loads((tmp_path / "one.json").read_text())
    assert record["format_version"] == 1 and record["space_options"]["width"] == 0.5
    (tmp_path / "bad.jsonl").write_text(spec_to_json(drawn[0]) + "\n{not json\n")
    with pytest.raises(SpecFileError, match=r"bad.jsonl:2: malformed JSON"):
        load_specs(tmp_path / "bad.jsonl")
    record["format_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(record))
    with pytest.raises(SpecFileError, match="unsupported format_version 99"):
        load_specs(tmp_path / "v99.json")
    record["format_version"], record["space_hash"] = 1, "0" * 16
    (tmp_path / "hash.json").write_text(json.dumps(record))
    with pytest.raises(SpaceMismatchError):
        load_specs(tmp_path / "hash.json")
    with pytest.raises(SpecFileError, match="no such spec file"):
        load_specs(tmp_path / "missing.json")

"""Predictors: differentiable w.r.t. soft encodings, save/load, space checks, GNN code paths, data sources."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from edgenas.errors import CheckpointError, SpaceMismatchError, StoreError
from edgenas.predictors import (
    NETWORK_KINDS,
    ArchTable,
    FitConfig,
    Predictor,
    build_network,
    fit_predictor,
    fit_sklearn,
    table_from_csv,
)
from edgenas.predictors.models import GraphLayer, GraphNet
from edgenas.spaces import get_space
from edgenas.spaces.encoding import graph_features


def synthetic_table(n=120, seed=0, space_name="mbv2-cifar"):
    """Latency = a per-(layer, op) cost table plus an interaction, so every kind has something to learn."""
    space = get_space(space_name)
    specs = space.sample(seed=seed, n=n)
    x = space.one_hot(specs).numpy()
    rng = np.random.default_rng(1)
    table = rng.uniform(0.1, 1.0, size=x.shape[1:])
    values = (x * table).sum((1, 2)) + 0.3 * x[:, 0, 0] * x[:, 1, 1] + 1.0
    return ArchTable(space, specs, values, "latency_ms", "synthetic")


@pytest.fixture(scope="module")
def fitted():
    table = synthetic_table()
    return {kind: fit_predictor(kind, table, FitConfig(epochs=3, seed=0)) for kind in NETWORK_KINDS}


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_gradient_matches_finite_differences(fitted, kind):
    predictor = fitted[kind].double()
    try:
        space = predictor.space
        soft = torch.softmax(torch.randn(2, space.num_layers, space.num_ops, dtype=torch.float64), -1)
        soft.requires_grad_(True)
        predictor(soft).sum().backward()
        analytic = soft.grad.clone()
        eps = 1e-6
        for layer, op in [(0, 0), (3, 2), (space.num_layers - 1, 1)]:
            bumped = soft.detach().clone()
            bumped[0, layer, op] += eps
            lowered = soft.detach().clone()
            lowered[0, layer, op] -= eps
            with torch.no_grad():
                numeric = (predictor(bumped).sum() - predictor(lowered).sum()) / (2 * eps)
            assert float(analytic[0, layer, op]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-7)
    finally:
        predictor.float()


def test_save_load_round_trip_gives_identical_outputs(fitted, tmp_path):
    space = get_space("mbv2-cifar")
    x = space.one_hot(space.sample(seed=5, n=7))
    for kind, predictor in fitted.items():
        path = predictor.save(tmp_path / f"{kind}.pt")
        loaded = Predictor.load(path)
        assert loaded.meta == predictor.meta
        assert torch.equal(loaded(x), predictor(x))


def test_space_mismatch_and_bad_files(fitted, tmp_path):
    predictor = fitted["mlp"]
    with pytest.raises(SpaceMismatchError, match="trained on mbv2-cifar"):
        predictor.predict(get_space("mbv2-cifar", width=0.5).sample(seed=0)[0])
    with pytest.raises(SpaceMismatchError, match="do not fit mbv2-cifar"):
        predictor(torch.zeros(1, 6, 5))
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(CheckpointError, match="not an edgenas predictor"):
        Predictor.load(bad)


def test_predict_single_and_batch_agree(fitted):
    space = get_space("mbv2-cifar")
    specs = space.sample(seed=9, n=3)
    batch = fitted["gnn"].predict(specs)
    assert batch.shape == (3,) and fitted["gnn"].predict(specs[1]) == pytest.approx(batch[1], rel=1e-6)
    assert np.all(batch > 0)


def test_lut_is_exact_on_additive_data():
    space = get_space("nb201")
    specs = space.sample(seed=0, n=200)
    x = space.one_hot(specs).numpy()
    costs = np.random.default_rng(0).uniform(0.1, 2.0, size=x.shape[1:])
    table = ArchTable(space, specs, (x * costs).sum((1, 2)) + 0.5, "latency_ms", "additive")
    lut = fit_predictor("lut", table, FitConfig(epochs=1))
    assert np.allclose(lut.predict(specs), table.values, rtol=1e-4)


def test_gnn_uses_both_directions_and_attention():
    space = get_space("nb201")
    adj = space.graph_adjacency()
    net = GraphNet(adj, space.num_ops, attention="node")
    layer = net.layers[0]
    assert isinstance(layer, GraphLayer) and layer.attention == "node"
    # forward messages follow M^T (a node hears its predecessors), backward ones follow M
    assert torch.equal(net.adj_forward > 0, (adj.t() + torch.eye(len(adj))) > 0)
    assert torch.equal(net.adj_backward > 0, (adj + torch.eye(len(adj))) > 0)
    x = space.one_hot(space.sample(seed=0, n=4))
    out = net(x)
    out.sum().backward()
    assert layer.mask_forward.grad.abs().sum() > 0 and layer.mask_backward.grad.abs().sum() > 0
    assert layer.forward_weight.weight.grad.abs().sum() > 0 and layer.backward_weight.weight.grad.abs().sum() > 0
    gcn = build_network("gcn", space)
    assert gcn.layers[0].attention == "none" and not hasattr(gcn.layers[0], "mask_forward")


def test_csv_source_skips_bad_rows_with_counts(tmp_path):
    space = get_space("nb201")
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "ms"])
        w.writerow([str(space.from_index(0)), "2.0"])
        w.writerow([str(space.from_index(1)), "0"])
        w.writerow([str(space.from_index(2)), ""])
        w.writerow(["|nope~0|", "1.0"])
        w.writerow([str(space.from_index(3)), "3.5"])
    table = table_from_csv(path, space, "arch_str", "ms")
    assert len(table) == 2 and table.values.tolist() == [2.0, 3.5]
    assert table.skipped == {"bad arch": 1, "empty or non-positive target": 2}


def test_csv_source_keeps_one_device_of_a_store_export(tmp_path):
    space = get_space("nb201")
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "arch", "value"])
        w.writerow(["a", str(space.from_index(0)), "2.0"])
        w.writerow(["b", str(space.from_index(0)), "2.6"])
        w.writerow(["a", str(space.from_index(1)), "3.0"])
    table = table_from_csv(path, space, "arch", "value", where={"device": "a"})
    assert table.values.tolist() == [2.0, 3.0] and table.skipped["filtered out"] == 1
    with pytest.raises(StoreError, match=r"missing column.*gpu"):
        table_from_csv(path, space, "arch", "value", where={"gpu": "x"})


@pytest.mark.parametrize("kind", ["svr", "rf", "gbr"])
def test_sklearn_regressors_learn_something(kind):
    train, test = synthetic_table(n=300).split(200, seed=0)
    pred = fit_sklearn(kind, train).predict_values(test.specs)
    assert np.corrcoef(pred, test.values)[0, 1] > 0.5


def test_few_shot_adaptation_improves_on_a_related_device():
    space = get_space("nb201")
    specs = space.sample(seed=0, n=400)
    x = space.one_hot(specs).numpy()
    rng = np.random.default_rng(3)
    shared = rng.uniform(0.1, 1.0, size=x.shape[1:])
    source_vals = (x * shared).sum((1, 2)) + 1.0
    quirk = rng.uniform(0.0, 1.0, size=x.shape[1:])  # the new device is slower on some ops
    target_vals = 4.0 * ((x * (shared + quirk)).sum((1, 2)) + 1.0)
    source = ArchTable(space, specs, source_vals, "latency_ms", "source")
    target = ArchTable(space, specs, target_vals, "latency_ms", "target")
    pre = fit_predictor("mlp", source, FitConfig(epochs=30))
    shots, rest = target.split(20, seed=1)
    from edgenas.predictors import adapt_predictor, pooled_table, scores

    before = scores(pre.predict(rest.specs), rest.values)
    after = scores(adapt_predictor(pre, shots).predict(rest.specs), rest.values)
    assert after["spearman"] > before["spearman"] and after["mape"] < before["mape"] / 2
    pooled = pooled_table([source, target])
    assert len(pooled) == 800 and abs(np.log(pooled.values[:400]).mean()) < 1e-9


def test_lut_from_ops_timed_alone():
    from edgenas.hardware import Protocol, RuntimeOptions
    from edgenas.hardware.device import LocalDevice
    from edgenas.predictors.lut import lut_predictor, measure_op_table

    space = get_space("mbv2-cifar", width=0.25, resolution=16)
    assert [space.layer_input_size(i) for i in (0, 4, 8, 12, 16, 20)] == [16, 16, 8, 4, 4, 2]
    device = LocalDevice("torch-cpu", RuntimeOptions(threads=1), Protocol(warmup=1, repeats=3, max_retries=0))
    table = measure_op_table(space, device)
    mask = space.mask().numpy()
    assert np.isnan(table[~mask]).all() and (table[mask] > 0).all()
    specs = space.sample(seed=0, n=6)
    whole = ArchTable(space, specs, np.linspace(1.0, 2.0, 6), "latency_ms", "cpu")
    lut = lut_predictor(space, table, whole, "cpu")
    x = space.one_hot(specs).numpy()
    expected = (x * np.nan_to_num(table)).sum((1, 2))
    expected += np.mean(whole.values - expected)  # the fitted constant
    assert np.allclose(lut.predict(specs), expected, rtol=1e-5)


def test_operator_attention_follows_the_ops_not_the_positions():
    """Eq 3.15's masks as a function of each node's op: swapping the ops of two layers swaps the operator-only masks,
    moves the default (operator + node) masks and the prediction; the node form's masks stay where they were."""
    space = get_space("mbv2-cifar", width=0.25)
    spec = space.sample(seed=0)[0]
    layers = [i for i, ops in enumerate(space.allowed_ops) if len(ops) > 2]
    a, b = layers[0], next(i for i in layers[1:] if spec.choices[i] != spec.choices[layers[0]])
    swapped = list(spec.choices)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    x = space.one_hot([spec, space.make_spec(swapped)])
    g = torch.Generator().manual_seed(0)
    for form in ("operator", "operator-only", "node"):
        net = GraphNet(space.graph_adjacency(), space.num_ops, attention=form)
        with torch.no_grad():
            for p in net.parameters():  # away from the zero initialisation, as after training
                p.copy_(torch.randn(p.shape, generator=g))
        masks = net.layers[0].masks(graph_features(x))[0].expand(2, -1, -1)
        before, after = masks[0], masks[1]  # node rows are shifted by one (row 0 is the input node)
        if form == "operator-only":
            torch.testing.assert_close(after[a + 1], before[b + 1])
            torch.testing.assert_close(after[b + 1], before[a + 1])
        elif form == "operator":
            assert not torch.allclose(after[a + 1], before[a + 1])  # the mask of a node follows its op
            with torch.no_grad():
                out = net(x)
            assert not torch.isclose(out[0], out[1])
        else:
            torch.testing.assert_close(after, before)
    gnn = build_network("gnn", space, {"attention": "operator"})
    x.requires_grad_(True)
    gnn(x).sum().backward()
    assert x.grad.abs().sum() > 0  # differentiable in the (relaxed) encoding, through the masks too

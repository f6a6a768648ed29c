"""SurgeNAS: ordered fair paths, gradient accumulation, identity mapping, one-level steps, beta, outputs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _toy import toy_predictor, toy_space

from edgenas.search.engine import SearchConfig, Target, search
from edgenas.search.supernet import Supernet
from edgenas.search.surgenas import THESIS_SETTINGS, surgenas_config
from edgenas.spaces import get_space
from edgenas.train import load_dataset


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


def _config(**overrides) -> SearchConfig:
    base = SearchConfig(epochs=2, warmup_epochs=1, batch_size=16, train_subset=32, device="cpu", seed=0)
    return replace(surgenas_config(base, warmup=False), **overrides)


@pytest.mark.parametrize("space_name", ["nb201", "mbv2-cifar"])
def test_ordered_paths_draw_every_op_of_every_layer_once_per_step(space_name) -> None:
    space = get_space(space_name, width=0.25) if space_name == "mbv2-cifar" else get_space(space_name)
    supernet = Supernet(space, seed=3)
    with torch.no_grad():
        supernet.alpha.normal_(0, 2, generator=torch.Generator().manual_seed(1))  # far from uniform
    mask = space.mask()
    allowed = mask.sum(-1)
    for step in range(4):
        paths = [supernet.state.chosen for _ in supernet.ordered_paths(step, tau=1.0)]
        assert len(paths) == int(allowed.max())
        counts = torch.zeros_like(mask, dtype=torch.long)
        for path in paths:
            counts[torch.arange(space.num_layers), torch.tensor(path)] += 1
        assert not counts[~mask].any()  # a disallowed op is never drawn
        for layer in range(space.num_layers):
            first = [p[layer] for p in paths[: int(allowed[layer])]]
            assert sorted(first) == torch.nonzero(mask[layer]).flatten().tolist()  # each allowed op exactly once
        full = allowed == allowed.max()
        assert (counts[full][mask[full]] == 1).all()
    if space_name == "mbv2-cifar":
        assert (allowed < allowed.max()).any()  # the fill rule was exercised (layers without skip)


def test_independent_paths_repeat_ops_within_a_step() -> None:
    supernet = Supernet(get_space("nb201"), seed=0)
    repeated = 0
    for step in range(5):
        paths = [list(supernet.state.chosen) for _ in supernet.ordered_paths(step, tau=1.0, replacement=True)]
        repeated += sum(len({p[layer] for p in paths}) < len(paths) for layer in range(len(paths[0])))
    assert repeated > 0


def test_ordered_sampling_follows_alpha() -> None:
    """The first path of a step is a Gumbel sample from P: with a dominant logit, it is almost always that op."""
    space = get_space("nb201")
    supernet = Supernet(space, seed=0)
    with torch.no_grad():
        supernet.alpha[:, 2] = 5.0
    first = [next(iter(supernet.ordered_paths(step, tau=1.0))) for step in range(50)]
    share = float(torch.stack([w.detach()[:, 2] for w in first]).mean())
    assert share > 0.9


def test_accumulated_path_gradients_equal_the_gradient_of_the_summed_loss() -> None:
    space = get_space("nb201", channels=4, cells_per_stage=1)
    table = torch.rand(space.num_layers, space.num_ops, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    beta = 0.5

    def grads(accumulate: bool) -> list[torch.Tensor]:
        supernet = Supernet(space, seed=1).double()
        supernet.state.phi = 1.5
        with torch.no_grad():
            supernet.alpha.normal_(0, 1, generator=torch.Generator().manual_seed(2))
        total = 0
        for weights in supernet.ordered_paths(step=7, tau=0.7):
            loss = F.cross_entropy(supernet(x.double()), y) + beta * (weights * table).sum()
            if accumulate:
                loss.backward()
            else:
                total = total + loss
        if not accumulate:
            total.backward()
        return [p.grad.clone() for p in supernet.parameters() if p.grad is not None]

    one_by_one, summed = grads(True), grads(False)
    assert len(one_by_one) == len(summed) > 2
    for a, b in zip(one_by_one, summed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert summed[0].abs().sum() > 0  # alpha got a gradient (CE and the latency term through the paths)


def test_identity_mapping_only_where_the_shape_is_kept() -> None:
    space = toy_space()
    supernet = Supernet(space, seed=0).eval()
    layers = [m for m in supernet.modules() if m.__class__.__name__ == "ChoiceLayer"]
    spec = space.make_spec([0] * space.num_layers)
    supernet.fix_path(spec)
    kept = changed = 0
    with torch.no_grad():
        for layer in layers:
            channels = next(m for m in layer.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
            x = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(layer.layer))
            supernet.state.phi = 0.0
            plain = layer(x)
            supernet.state.phi = 2.0
            mapped = layer(x)
            if plain.shape == x.shape:
                torch.testing.assert_close(mapped, plain + 2.0 * x)
                kept += 1
            else:
                torch.testing.assert_close(mapped, plain)  # stride or width change: no identity
                changed += 1
    assert kept and changed


def test_search_decays_phi_to_zero_counts_updates_and_leaves_no_identity(sample, tmp_path) -> None:
    space = toy_space()
    config = _config()
    result = search(space, [Target(toy_predictor(space), None)], sample, config, tmp_path / "run")
    phis = [r["phi"] for r in result.trajectory]
    n = len(phis)
    assert phis[0] == pytest.approx(THESIS_SETTINGS["identity_phi"]) and phis[-1] == 0.0
    assert phis == pytest.approx([2.0 * (1 - i / (n - 1)) for i in range(n)])
    assert all(r["phase"] == "w" for r in result.trajectory)  # one level: no architecture phase
    counts = np.asarray(result.summary["update_counts"])
    mask = space.mask().numpy()
    assert (counts[mask] >= n).all() and not counts[~mask].any()
    full = mask.sum(1) == mask.sum(1).max()
    assert (counts[full][mask[full]] == n).all()  # every op of a full layer exactly once per step
    # alpha moved only after the warm-up, then in every step
    probs = np.asarray([r["probs"] for r in result.trajectory])
    warm = [r["epoch"] < config.warmup_epochs for r in result.trajectory]
    assert np.allclose(probs[warm], probs[0]) and not np.allclose(probs[-1], probs[0])
    assert (tmp_path / "run" / "alpha.png").stat().st_size > 0
    config_record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config_record["data"]["alpha_split"] == 0  # nothing held out
    # the derived network is the space's, built without the supernet: nothing of phi in it
    net = space.build(result.arch)
    assert not any(m.__class__.__name__ == "ChoiceLayer" for m in net.modules())


def test_beta_trades_latency_for_accuracy(sample, tmp_path) -> None:
    space = toy_space()
    predictor = toy_predictor(space)
    predicted = {}
    for beta in (0.0, 5.0):
        config = _config(beta=beta, alpha_lr=0.05, epochs=3)
        result = search(space, [Target(predictor, None)], sample, config, tmp_path / f"b{beta}")
        predicted[beta] = result.summary["targets"][0]["predicted"]
        assert result.summary["targets"][0]["target"] is None
    assert predicted[5.0] < 0.8 * predicted[0.0]  # the latency term moved alpha towards the cheaper ops


def test_interrupted_surgenas_resumes_to_the_same_trajectory(sample, tmp_path) -> None:
    space = toy_space()
    config = _config(epochs=3, alpha_lr=0.05)
    full = search(space, [], sample, config, tmp_path / "full")

    class Interrupt(Exception):
        pass

    def stop_in_epoch_three(entry: dict) -> None:
        if entry["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        search(space, [], sample, config, tmp_path / "cut", on_step=stop_in_epoch_three)
    resumed = search(space, [], sample, config, tmp_path / "cut", resume=True)
    assert [r["paths"] for r in resumed.trajectory] == [r["paths"] for r in full.trajectory]
    for a, b in zip(full.trajectory, resumed.trajectory, strict=True):
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-6)
        assert a["phi"] == b["phi"]
    assert resumed.arch == full.arch
    assert resumed.summary["update_counts"] == full.summary["update_counts"]


def test_refine_refuses_a_one_level_search(sample, tmp_path) -> None:
    from edgenas.errors import SearchError
    from edgenas.search.refine import refine

    config = _config()
    search(toy_space(), [], sample, config, tmp_path / "run")
    with pytest.raises(SearchError, match="no separate architecture phase"):
        refine(tmp_path / "run", toy_space(), [], config, 5, data=sample)


def test_the_command_offers_the_engine_s_path_samplings() -> None:
    from edgenas.cli.search_surgenas import PATH_SAMPLINGS as OFFERED
    from edgenas.search.engine import PATH_SAMPLINGS

    assert OFFERED == PATH_SAMPLINGS

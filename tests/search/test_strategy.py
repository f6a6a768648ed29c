"""The engine and its strategies: the registry, a new strategy as one class, paths as specified, the accuracy term
reaching alpha in the real loop, the run directory's provenance record."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from _toy import toy_predictor, toy_space

from edgenas.errors import SearchError
from edgenas.search import Strategy, get_strategy, list_strategies, register_strategy
from edgenas.search.budget import feasible_range
from edgenas.search.engine import SearchConfig, Target, search
from edgenas.search.supernet import Supernet
from edgenas.train import load_dataset

TINY = SearchConfig(epochs=2, warmup_epochs=1, batch_size=16, train_subset=64, val_fraction=0.5, w_lr=0.05)


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


def middle_target():
    space, predictor = toy_space(), toy_predictor()
    rng = feasible_range(predictor, space)
    return space, Target(predictor, 0.5 * (rng.low + rng.high))


def test_registry_lists_refuses_duplicates_and_unknown_names():
    assert {"lightnas", "fbnet"} <= set(list_strategies())
    with pytest.raises(SearchError, match="new, non-empty name"):
        register_strategy(get_strategy("lightnas"))
    with pytest.raises(SearchError, match=r"unknown search strategy 'darts2'; strategies: .*lightnas"):
        get_strategy("darts2")
    with pytest.raises(SearchError, match="unknown search strategy"):
        SearchConfig(method="nope").check()


def test_single_path_runs_one_op_per_layer_and_fbnet_mixes_all():
    space = toy_space()
    supernet = Supernet(space, seed=0)
    single = get_strategy("lightnas").sample(supernet, step=0, tau=1.0)
    assert supernet.state.chosen is not None and len(supernet.state.chosen) == space.num_layers
    assert torch.equal(single.detach().sum(-1), torch.ones(space.num_layers))
    assert int((single.detach() > 0).sum()) == space.num_layers  # exactly one op per layer in the forward pass
    mixed = get_strategy("fbnet").sample(supernet, step=0, tau=1.0)
    assert supernet.state.chosen is None
    allowed = space.mask()
    assert bool((mixed.detach()[allowed] > 0).all()) and float(mixed.detach()[~allowed].abs().sum()) == 0.0


def test_the_accuracy_term_reaches_alpha_in_the_real_loop(sample, tmp_path):
    """With the budget term switched off (lambda stays 0), alpha moves only through the cross-entropy: it must move
    with the accuracy term and stay at its initial zeros without it."""
    space, target = middle_target()
    frozen_budget = {"lambda_lr": 0.0, "lambda_p": 0.0}
    search(space, [target], sample, SearchConfig(**{**TINY.__dict__, **frozen_budget}), tmp_path / "ce")
    search(
        space, [target], sample, SearchConfig(**{**TINY.__dict__, **frozen_budget, "accuracy": False}), tmp_path / "no"
    )
    alpha = {
        k: torch.load(tmp_path / k / "checkpoints" / "last.pt", weights_only=True)["supernet"]["alpha"]
        for k in ("ce", "no")
    }
    assert float(alpha["ce"].abs().max()) > 1e-4
    assert float(alpha["no"].abs().max()) == 0.0


class Uniform(Strategy):
    """A strategy that is one class: single path, and an architecture step that leaves alpha alone."""

    name = "test-uniform"

    def alpha_step(self, supernet, predictors, controllers, optimizer, step, tau, cross_entropy, reduce=None):
        self.sample(supernet, step, tau)
        optimizer.zero_grad(set_to_none=True)
        optimizer.step()  # no gradient: alpha stays where it is
        return {
            "tau": tau,
            "ce": None,
            "loss": 0.0,
            "lambda": [0.0],
            "sampled": [0.0],
            "derived": [0.0],
            "entropy": 0.0,
        }


def test_a_new_strategy_is_one_registered_class(sample, tmp_path):
    if "test-uniform" not in list_strategies():
        register_strategy(Uniform())
    space, target = middle_target()
    result = search(
        space, [target], sample, SearchConfig(**{**TINY.__dict__, "method": "test-uniform"}), tmp_path / "u"
    )
    assert result.summary["method"] == "test-uniform"
    alpha = torch.load(tmp_path / "u" / "checkpoints" / "last.pt", weights_only=True)["supernet"]["alpha"]
    assert float(alpha.abs().max()) == 0.0


def test_run_directory_keeps_the_provenance_record(sample, tmp_path):
    space, target = middle_target()
    search(space, [target], sample, TINY, tmp_path / "run")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["seed"] == 0 and env["versions"]["torch"] and env["device"]["cpu_count"] >= 1 and "git_commit" in env


def test_supernet_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Supernet(toy_space(), seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_darts_mixes_every_op_by_softmax_without_noise():
    space = toy_space()
    supernet = Supernet(space, seed=0)
    with torch.no_grad():
        supernet.alpha.normal_(generator=torch.Generator().manual_seed(1))
    a = get_strategy("darts").sample(supernet, step=0, tau=1.0)
    b = get_strategy("darts").sample(supernet, step=99, tau=0.1)  # neither the step nor tau matter
    assert supernet.state.chosen is None and torch.equal(a, b)
    assert torch.allclose(a, supernet.probabilities()) and bool((a[space.mask()] > 0).all())


def test_gdas_temperature_is_linear_from_start_to_end():
    config = SearchConfig(epochs=6, warmup_epochs=1, tau_start=10.0, tau_end=0.1)
    gdas = get_strategy("gdas")
    taus = [gdas.tau(config, e) for e in range(6)]
    assert taus[0] == taus[1] == 10.0 and taus[-1] == pytest.approx(0.1)
    steps = [b - a for a, b in itertools.pairwise(taus[1:])]
    assert all(s == pytest.approx(steps[0]) for s in steps)  # linear, unlike LightNAS' exponential decay
    assert get_strategy("lightnas").tau(config, 3) != pytest.approx(taus[3])


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_darts_and_gdas_search_end_to_end(method, sample, tmp_path):
    space, target = middle_target()
    config = SearchConfig(**{**TINY.__dict__, "method": method, "lambda_lr": 0.0, "lambda_p": 0.0})
    result = search(space, [target], sample, config, tmp_path / method)
    records = [json.loads(line) for line in (tmp_path / method / "trajectory.jsonl").read_text().splitlines()]
    alpha_steps = [r for r in records if r["phase"] == "alpha"]
    assert alpha_steps and all(r["lambda"] == [0.0] for r in alpha_steps)  # plain: no budget term
    assert all((r["path"] is None) == (method == "darts") for r in alpha_steps)
    assert result.summary["method"] == method


def test_a_shallower_search_network_keeps_the_deployed_space():
    from edgenas.search.engine import build_supernet
    from edgenas.spaces import get_space

    space = get_space("nb201", channels=4)
    deep = build_supernet(space, SearchConfig())
    shallow = build_supernet(space, SearchConfig(supernet_options={"cells_per_stage": 1}))
    count = lambda net: sum(p.numel() for p in net.weight_parameters())  # noqa: E731
    assert count(shallow) < count(deep) / 2  # 3 searched cells instead of 15
    assert shallow.derived_spec().space_hash == space.config_hash  # derived in the deployed network's space
    shallow.sample_single_path(0, 1.0)
    assert shallow(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_search_network_with_other_layers_is_refused():
    from edgenas.spaces import get_space

    with pytest.raises(SearchError, match="searchable layers"):
        Supernet(get_space("mbv2-cifar"), proxy=get_space("nb201"))


@pytest.mark.parametrize("alternate", ["batch", "epoch"])
def test_weight_and_architecture_steps_alternate_per_batch_or_per_epoch(alternate, sample, tmp_path):
    space, target = middle_target()
    config = SearchConfig(**{**TINY.__dict__, "method": "gdas", "alternate": alternate})
    search(space, [target], sample, config, tmp_path / alternate)
    records = [json.loads(line) for line in (tmp_path / alternate / "trajectory.jsonl").read_text().splitlines()]
    searching = [r["phase"] for r in records if r["epoch"] >= config.warmup_epochs]
    w_steps = searching.count("w")
    if alternate == "batch":  # DARTS' Algorithm 1: an alpha step, then a w step, on every batch
        assert searching == ["alpha", "w"] * w_steps
    else:  # an epoch of w steps, then an epoch of alpha steps
        epoch = [r["phase"] for r in records if r["epoch"] == config.warmup_epochs]
        assert epoch == sorted(epoch, key=lambda p: p != "w") and "alpha" in epoch
    assert [r["step"] for r in records] == list(range(len(records)))


def test_an_unknown_alternation_is_refused():
    with pytest.raises(SearchError, match="alternate"):
        SearchConfig(alternate="sometimes").check()


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_the_alpha_learning_rate_follows_its_schedule(schedule, sample, tmp_path):
    """NAS-Bench-201's DARTS and GDAS keep alpha's lr constant; the default decays it with a cosine. The trajectory
    records the rate each step used."""
    space, target = middle_target()
    config = SearchConfig(**{**TINY.__dict__, "method": "gdas", "epochs": 3, "alpha_lr_schedule": schedule})
    search(space, [target], sample, config, tmp_path / schedule)
    records = [json.loads(line) for line in (tmp_path / schedule / "trajectory.jsonl").read_text().splitlines()]
    alpha_lrs = [r["lr"] for r in records if r["phase"] == "alpha"]
    w_lrs = [r["lr"] for r in records if r["phase"] == "w"]
    assert alpha_lrs[0] == pytest.approx(config.alpha_lr)
    if schedule == "constant":
        assert alpha_lrs == pytest.approx([config.alpha_lr] * len(alpha_lrs))
    else:
        assert all(a > b for a, b in itertools.pairwise(alpha_lrs)) and alpha_lrs[-1] < 0.5 * config.alpha_lr
    assert w_lrs[0] == pytest.approx(config.w_lr) and w_lrs[-1] < 0.5 * config.w_lr  # w: cosine either way
    with pytest.raises(SearchError, match="alpha_lr_schedule"):
        SearchConfig(alpha_lr_schedule="step").check()


def _trained_candidates(space, config, run) -> dict[tuple[str, str], bool]:
    """Which candidate ops with weights moved from their seeded initialisation during the search in ``run``."""
    from edgenas.search.engine import build_supernet
    from edgenas.search.supernet import ChoiceLayer
    from edgenas.train.checkpoint import load_checkpoint

    initial = build_supernet(space, config)
    final = load_checkpoint(run / "checkpoints" / "last.pt")["supernet"]
    moved = {}
    for name, module in initial.named_modules():
        if isinstance(module, ChoiceLayer):
            for key, op in module.candidates.items():
                params = [(f"{name}.candidates.{key}.{p}", t) for p, t in op.named_parameters()]
                if params:
                    moved[name, key] = any(not torch.equal(final[n], t) for n, t in params)
    return moved


@pytest.mark.parametrize("fair", [False, True])
def test_a_fair_warmup_trains_every_op_of_every_layer(fair, sample, tmp_path):
    """The authors' warm-up (METHODS.md): every weight step of the warm-up runs every op once; one sampled path per
    step cannot reach all ops of a 7-op layer in this search's four weight steps."""
    space, target = middle_target()
    config = SearchConfig(**{**TINY.__dict__, "method": "lightnas", "epochs": 2, "fair_warmup": fair})
    search(space, [target], sample, config, tmp_path / str(fair))
    moved = _trained_candidates(space, config, tmp_path / str(fair))
    assert moved and all(moved.values()) == fair

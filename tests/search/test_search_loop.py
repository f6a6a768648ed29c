"""The search loop's settings that the peers' loops differ in (issue: parity with NNI's DARTS on NAS-Bench-201):
alpha's initial noise, the search network's initialisation and BatchNorm, the weights' momentum, GDAS' gradient to
the unsampled ops, the batches each phase steps on, and a derived cell that is a network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _toy import toy_predictor, toy_space

from edgenas.errors import SearchError
from edgenas.search.budget import feasible_range
from edgenas.search.engine import SearchConfig, Target, build_supernet, search, search_split
from edgenas.search.supernet import ChoiceLayer, Supernet, SupernetOptions
from edgenas.spaces import get_space
from edgenas.spaces.nb201 import OPS, cell_is_connected
from edgenas.train import load_dataset

TINY = SearchConfig(epochs=2, warmup_epochs=1, batch_size=16, train_subset=64, val_fraction=0.5, w_lr=0.05)
NB201_TINY = {"cells_per_stage": 1, "channels": 4}


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


def test_alpha_starts_at_seeded_small_noise_or_exact_zeros():
    space = get_space("nb201", **NB201_TINY)
    zeros = Supernet(space, seed=0).alpha.detach()
    assert torch.equal(zeros, torch.zeros_like(zeros))
    noisy = [Supernet(space, seed=s, options=SupernetOptions(alpha_init_std=1e-3)).alpha.detach() for s in (0, 0, 1)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])
    assert 2e-4 < float(noisy[0].std()) < 5e-3 and float(noisy[0].abs().max()) < 1e-2
    with pytest.raises(SearchError, match="alpha_init_std"):
        SearchConfig(alpha_init_std=-1.0).check()


def test_torch_init_and_affine_free_cells_change_only_what_they_name():
    space = get_space("nb201", **NB201_TINY)
    ours = Supernet(space, seed=0)
    theirs = Supernet(space, seed=0, options=SupernetOptions(init="torch", bn_affine=False))
    conv = next(m for m in theirs.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    # PyTorch's default: kaiming_uniform with a = sqrt(5), a bound of 1 / sqrt(fan_in)
    bound = 1 / np.sqrt(conv.in_channels * 9)
    assert float(conv.weight.detach().abs().max()) <= bound + 1e-7
    ours_conv = dict(ours.named_modules())[next(n for n, m in theirs.named_modules() if m is conv)]
    assert float(ours_conv.weight.detach().std()) > 1.5 * float(
        conv.weight.detach().std()
    )  # He-normal on fan-out is larger
    for name, module in theirs.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            inside_choice = any(
                isinstance(m, ChoiceLayer) and name.startswith(n + ".") for n, m in theirs.named_modules()
            )
            assert module.affine == (not inside_choice), name
    assert sum(p.numel() for p in theirs.weight_parameters()) < sum(p.numel() for p in ours.weight_parameters())
    with pytest.raises(SearchError, match="supernet init"):
        SearchConfig(supernet_init="xavier").check()


@pytest.mark.parametrize("unsampled", [False, True])
def test_gdas_gives_every_unsampled_op_of_an_edge_a_gradient(unsampled):
    """GDAS' search cells add each unsampled op's weight (value 0) to the edge as a scalar: its gradient is the sum
    of the gradient reaching the edge's output; without it the unsampled weights get none."""
    space = get_space("nb201", **NB201_TINY)
    supernet = Supernet(space, seed=0, options=SupernetOptions(unsampled_gradient=unsampled))
    weights = supernet.sample_single_path(step=0, tau=1.0)
    weights.retain_grad()
    outputs: list[torch.Tensor] = []
    edge = 3  # 3 <- 0: the cell input to the cell output, so its output gradient is never cut by a `none`
    for layer in (m for m in supernet.modules() if isinstance(m, ChoiceLayer) and m.layer == edge):  # one per cell
        layer.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    out = supernet(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    for output in outputs:
        output.retain_grad()
    out.pow(2).sum().backward()
    chosen = supernet.state.chosen[edge]
    unsampled_grads = torch.stack([weights.grad[edge, j] for j in range(len(OPS)) if j != chosen])
    if unsampled:
        expected = sum(output.grad.sum() for output in outputs).double()  # the cells share the edge's weights
        assert float(expected) != 0.0
        assert torch.allclose(unsampled_grads.double(), expected.expand(len(OPS) - 1), rtol=1e-4, atol=1e-6)
    else:
        assert torch.equal(unsampled_grads, torch.zeros_like(unsampled_grads))
    assert float(weights.grad[edge, chosen]) != 0.0


def test_plain_or_nesterov_momentum_follows_the_config(sample, tmp_path):
    from edgenas.search.steps import optimizers as _optimizers

    space = toy_space()
    for nesterov in (True, False):
        config = SearchConfig(**{**TINY.__dict__, "w_nesterov": nesterov})
        w_opt = _optimizers(build_supernet(space, config), config, 32, 32, False)[0]
        assert w_opt.param_groups[0]["nesterov"] is nesterov


@pytest.mark.parametrize("alternate", ["batch", "epoch"])
def test_each_phase_steps_on_its_own_split(alternate, sample, tmp_path):
    """The trajectory records which image opened each step's batch: weights step on the weight split, alpha on the
    held-out split, and the lrs of a constant schedule stay put."""
    space, predictor = toy_space(), toy_predictor()
    rng = feasible_range(predictor, space)
    config = SearchConfig(
        **{
            **TINY.__dict__,
            "method": "darts",
            "alternate": alternate,
            "w_lr_schedule": "constant",
            "alpha_lr_schedule": "constant",
            "warmup_epochs": 0,
        }
    )
    search(space, [Target(predictor, 0.5 * (rng.low + rng.high))], sample, config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()]
    w_idx, a_idx = (set(map(int, part)) for part in search_split(sample.train_labels, config))
    assert {r["first_image"] for r in records if r["phase"] == "w"} <= w_idx
    assert {r["first_image"] for r in records if r["phase"] == "alpha"} <= a_idx
    assert {r["lr"] for r in records if r["phase"] == "w"} == {config.w_lr}
    assert {r["lr"] for r in records if r["phase"] == "alpha"} == {config.alpha_lr}


def test_a_cut_off_cell_is_never_derived_when_a_connected_one_exists():
    space = get_space("nb201")
    logits = torch.zeros(6, len(OPS))
    logits[:, OPS.index("none")] = 3.0  # argmax: every edge `none`, a cell computing zero
    logits[3, OPS.index("nor_conv_3x3")] = 2.9  # the best connected cell: 3<-0 a conv, the rest `none`
    derived = space.derive(logits)
    assert space.is_valid_network(derived)
    assert space.format(derived) == "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
    logits[1, OPS.index("skip_connect")] = 5.0  # 2<-0 skip, but node 2 feeds nothing live: still cut off
    assert not cell_is_connected(tuple(int(i) for i in logits.argmax(-1)))
    assert space.is_valid_network(space.derive(logits))
    connected = torch.zeros(6, len(OPS))
    connected[:, OPS.index("skip_connect")] = 1.0
    assert space.format(space.derive(connected)).count("skip_connect") == 6  # a valid argmax is kept as is


def test_the_summary_says_how_the_cell_was_derived(sample, tmp_path):
    space = get_space("nb201", **NB201_TINY)
    config = SearchConfig(**{**TINY.__dict__, "method": "darts", "epochs": 1, "warmup_epochs": 0})
    result = search(space, [], sample, config, tmp_path / "run")
    assert result.summary["derivation"] == "nonzero"  # DARTS' rule: no `none` edge, so never cut off
    assert space.is_valid_network(result.arch) and "none" not in space.format(result.arch)


@pytest.mark.parametrize(
    ("scope", "gain"), [("layer", lambda phi: phi + 2 * phi**2 + phi**3), ("block", lambda phi: phi)]
)
def test_the_identity_reading_adds_the_formula_to_a_cell_of_none_edges(scope, gain):
    """SurgeNAS' phi * x on every edge (Eq 3.6 read per layer) compounds through a NAS-Bench-201 cell: a cell of
    `none` edges outputs (phi + 2 phi^2 + phi^3) x; once per cell (per block) it outputs phi x."""
    space = get_space("nb201", **NB201_TINY)
    supernet = Supernet(space, seed=0, options=SupernetOptions(identity_scope=scope)).double()
    cell = space.identity_blocks(supernet.net)[0]
    supernet.fix_path(space.make_spec(["none"] * 6))
    supernet.state.weights = supernet.state.weights.double()
    x = torch.randn(2, NB201_TINY["channels"], 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    phi = 2.0
    supernet.state.phi = phi
    with torch.no_grad():
        out = cell(x)
    assert torch.allclose(out, gain(phi) * x, rtol=0, atol=1e-12)
    supernet.state.phi = 0.0
    with torch.no_grad():
        assert torch.equal(cell(x), torch.zeros_like(x))
    with pytest.raises(SearchError, match="identity scope"):
        SearchConfig(identity_scope="node").check()


def test_a_space_sets_its_measured_loop_and_the_user_overrides_it():
    """NAS-Bench-201 cells default to NNI's DARTS loop; a layer-wise space keeps the engine's (thesis') defaults;
    a given value wins, ``None`` means not given, an unknown option is refused."""
    cells = SearchConfig.for_space(get_space("nb201"), method="darts", warmup_epochs=None)
    assert (cells.alternate, cells.w_lr_schedule, cells.alpha_lr_schedule) == ("batch", "constant", "constant")
    assert (cells.warmup_epochs, cells.w_nesterov, cells.alpha_init_std) == (0, False, 1e-3)
    assert cells.network_options() == SupernetOptions(
        init="torch", bn_affine=False, alpha_init_std=1e-3, identity_scope="block", derivation="nonzero"
    )
    assert SearchConfig.for_space(get_space("mbv2-cifar"), method="darts") == SearchConfig(method="darts")
    mine = SearchConfig.for_space(get_space("nb201"), warmup_epochs=2, alpha_lr_schedule="cosine")
    assert (mine.warmup_epochs, mine.alpha_lr_schedule, mine.alternate) == (2, "cosine", "batch")
    with pytest.raises(SearchError, match="unknown search options: nesterov"):
        SearchConfig.for_space(get_space("nb201"), nesterov=True)


def test_nonzero_derivation_skips_the_zero_op_where_argmax_keeps_it():
    """DARTS' rule (the strongest non-zero op per edge) against the argmax, on logits whose argmax is `none`."""
    space = get_space("nb201", **NB201_TINY)
    logits = torch.zeros(space.num_layers, space.num_ops)
    logits[:, OPS.index("none")] = 2.0
    logits[:, OPS.index("nor_conv_1x1")] = 1.0
    logits[0, OPS.index("skip_connect")] = 1.5
    nonzero = space.derive(logits, "nonzero")
    assert [OPS[c] for c in nonzero.choices] == ["skip_connect"] + ["nor_conv_1x1"] * 5
    assert cell_is_connected(space.derive(logits).choices)  # the argmax (all none) is cut off: repaired
    assert "none" in [OPS[c] for c in space.derive(logits).choices]
    layerwise = get_space("mbv2-cifar")  # no zero op: both rules agree
    lw = torch.randn(layerwise.num_layers, layerwise.num_ops, generator=torch.Generator().manual_seed(0))
    assert layerwise.derive(lw, "nonzero") == layerwise.derive(lw)
    with pytest.raises(SearchError, match="derivation rule"):
        space.derive(logits, "top2")


def test_the_derivation_rule_follows_the_config_or_the_strategy():
    space = get_space("nb201", **NB201_TINY)
    assert SearchConfig(method="gdas").network_options().derivation == "argmax"
    assert SearchConfig(method="darts").network_options().derivation == "nonzero"  # DARTS' own rule
    assert SearchConfig(method="surgenas").network_options().derivation == "nonzero"  # measured on cells
    assert SearchConfig(method="darts", derivation="argmax").network_options().derivation == "argmax"
    assert SearchConfig(method="gdas", derivation="nonzero").network_options().derivation == "nonzero"
    supernet = Supernet(space, seed=0, options=SupernetOptions(derivation="nonzero"))
    with torch.no_grad():
        supernet.alpha[:, OPS.index("none")] = 3.0
    assert "none" not in [OPS[c] for c in supernet.derived_spec().choices]
    assert supernet.rule_spec() == supernet.derived_spec()
    with pytest.raises(SearchError, match="derivation must be one of"):
        SearchConfig(derivation="top2").check()

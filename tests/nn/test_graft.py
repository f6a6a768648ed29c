"""Grafting and collapse: every grafted block kind collapses into one conv with the same outputs (random weights and
random, non-trivial BN statistics), whole MobileNetV2/ResNet-50 with random masks, Domino-Pro, and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

from edgenas.errors import GraftError
from edgenas.export import export_onnx, run_onnx
from edgenas.nn import DominoPro, GraftedBlock, MBConv, graft, graft_block, graftable_blocks, reparameterize
from edgenas.nn.testing import randomize_batchnorm
from edgenas.spaces import build, get_space

F64_ABS = 1e-10
F32_REL = 1e-4


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


BLOCKS = {
    "mbv2-t1": lambda: InvertedResidual(16, 8, 1, 1),
    "mbv2-s1-res": lambda: InvertedResidual(8, 8, 1, 6),
    "mbv2-s2": lambda: InvertedResidual(8, 12, 2, 6),
    "bottleneck-s1-id": lambda: Bottleneck(16, 4),
    "bottleneck-s2-proj": lambda: Bottleneck(8, 4, stride=2, downsample=_downsample(8, 16, 2)),
    "resnext-grouped": lambda: Bottleneck(16, 8, stride=2, downsample=_downsample(16, 32, 2), groups=4, base_width=8),
    "basic-s1": lambda: BasicBlock(8, 8),
    "basic-s2-proj": lambda: BasicBlock(8, 12, stride=2, downsample=_downsample(8, 12, 2)),
    "mbconv-k3e6-s1": lambda: MBConv(8, 8, 3, 6),
    "mbconv-k5e3-s2": lambda: MBConv(8, 16, 5, 3, stride=2),
    "mbconv-k7e6-s1": lambda: MBConv(8, 8, 7, 6),
    "mbconv-k5e1-g2-shuffle": lambda: MBConv(8, 8, 5, 1, groups=2, act=nn.ReLU, expand_at_e1=True),
}


def _random_block(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(BLOCKS[name](), seed=seed).eval()


@pytest.mark.parametrize("name", sorted(BLOCKS))
@pytest.mark.parametrize("size", [15, 16])
def test_each_grafted_block_collapses_exactly(name: str, size: int) -> None:
    grafted = graft_block(_random_block(name)).double().eval()
    plain = grafted.to_plain()
    conv = plain[0]
    assert isinstance(conv, nn.Conv2d)
    x = torch.randn(2, grafted.in_channels, size, size, dtype=torch.float64)
    with torch.no_grad():
        expected, got = grafted(x), plain(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= F64_ABS
    # float32: the collapsed conv against the float32 training form
    grafted32 = grafted.float()
    with torch.no_grad():
        e32, g32 = grafted32(x.float()), grafted32.to_plain()(x.float())
    assert ((g32 - e32).abs().max() / e32.abs().max()).item() <= F32_REL


def test_grafting_removes_inner_activations_and_keeps_one_at_the_end() -> None:
    block = _random_block("mbv2-s1-res")
    grafted = graft_block(block)
    assert not any(isinstance(m, nn.ReLU6) for m in grafted.stages.modules())
    assert isinstance(grafted.activation, nn.ReLU6)
    assert isinstance(graft_block(block, keep_activation=False).activation, nn.Identity)
    # the original block is untouched, and its output differs from the grafted one (the ReLU6s are gone)
    assert sum(isinstance(m, nn.ReLU6) for m in block.modules()) == 2
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        assert not torch.allclose(block(x), grafted(x), atol=1e-3)


def test_an_ungrafted_mask_leaves_the_network_unchanged() -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(torchvision.models.mobilenet_v2(num_classes=10)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        graft(model, "1" * 17)
        after = model(x)
    assert torch.equal(before, after)
    assert not any(isinstance(m, GraftedBlock) for m in model.modules())


@pytest.mark.parametrize(("arch", "n_blocks", "resolution"), [("mobilenet_v2", 17, 48), ("resnet50", 16, 32)])
def test_whole_networks_with_random_masks_collapse_exactly(arch: str, n_blocks: int, resolution: int) -> None:
    rng = np.random.default_rng(0)
    for trial in range(2):
        torch.manual_seed(trial)
        model = randomize_batchnorm(getattr(torchvision.models, arch)(num_classes=10), seed=trial)
        assert len(graftable_blocks(model)) == n_blocks
        mask = "".join(rng.choice(["0", "1"], n_blocks))
        grafted = graft(model, mask).double().eval()
        assert sum(isinstance(m, GraftedBlock) for m in grafted.modules()) == mask.count("0")
        collapsed = reparameterize(grafted)
        x = torch.randn(2, 3, resolution, resolution, dtype=torch.float64)
        with torch.no_grad():
            expected, got = grafted(x), collapsed(x)
        scale = max(1.0, expected.abs().max().item())
        assert (got - expected).abs().max().item() <= F64_ABS * scale


def test_reparameterized_model_needs_no_edgenas_class() -> None:
    torch.manual_seed(0)
    space = get_space("fbnet")
    model = randomize_batchnorm(build(space.sample(3)[0]))
    graft(model, "".join("0" if i % 2 else "1" for i in range(len(graftable_blocks(model)))))
    collapsed = reparameterize(model)
    assert isinstance(collapsed, torch.fx.GraphModule)
    assert all(not type(m).__module__.startswith("edgenas") for m in collapsed.modules())
    # conv-BN pairs outside the grafted blocks are folded too
    assert not any(isinstance(m, nn.BatchNorm2d) for m in collapsed.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, got = model.eval()(x), collapsed(x)
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= F32_REL


def test_timm_style_walk_reparameterizes_blocks_in_place() -> None:
    torch.manual_seed(1)
    model = graft(randomize_batchnorm(torchvision.models.mobilenet_v2(num_classes=10)), "all").double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        for module in model.modules():  # what timm.utils.reparameterize_model does
            if hasattr(module, "reparameterize"):
                module.reparameterize()
        got = model(x)
    blocks = [m for m in model.modules() if isinstance(m, GraftedBlock)]
    assert all(b.collapsed is not None and len(b.stages) == 0 for b in blocks)
    assert (got - expected).abs().max().item() <= F64_ABS


@pytest.mark.parametrize("name", ["mbv2-s2", "bottleneck-s2-proj", "basic-s1", "mbconv-k5e1-g2-shuffle"])
def test_domino_pro_collapses_to_the_same_conv_shape(name: str) -> None:
    plain_conv = graft_block(_random_block(name)).to_plain()[0]
    pro = graft_block(_random_block(name), pro=DominoPro(width=2.0, extra_pointwise=2))
    randomize_batchnorm(pro, seed=5)
    pro = pro.double().eval()
    n_params = sum(p.numel() for p in pro.parameters())
    assert n_params > sum(p.numel() for p in graft_block(_random_block(name)).parameters())
    pro_conv = pro.to_plain()[0]
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "groups"):
        assert getattr(pro_conv, attr) == getattr(plain_conv, attr), attr
    x = torch.randn(2, pro.in_channels, 13, 13, dtype=torch.float64)
    with torch.no_grad():
        assert (pro(x) - pro.to_plain()(x)).abs().max().item() <= F64_ABS


def test_collapsed_network_runs_in_onnx_runtime(tmp_path) -> None:
    torch.manual_seed(2)
    model = graft(randomize_batchnorm(torchvision.models.mobilenet_v2(num_classes=10)), "01" * 8 + "0").eval()
    collapsed = reparameterize(model)
    result = export_onnx(collapsed, tmp_path / "m.onnx", (2, 3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_onnx(result.path, x.numpy())
    assert np.abs(got - expected).max() / np.abs(expected).max() <= F32_REL


def test_bad_masks_and_models_raise() -> None:
    model = torchvision.models.mobilenet_v2(num_classes=10)
    with pytest.raises(GraftError, match="17 graftable blocks"):
        graft(model, "0101")
    with pytest.raises(GraftError, match=r"one 0 \(graft\) or 1"):
        graft(model, "01x" * 5)
    graft(model, "0" + "1" * 16)
    with pytest.raises(GraftError, match="already grafted"):
        graft(model, "1" * 17)
    with pytest.raises(GraftError, match="no graftable block"):
        graft(
            build(
                get_space("nb201").parse(
                    "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"
                )
            ),
            "all",
        )
    with pytest.raises(GraftError, match="width must be"):
        DominoPro(width=0.5)

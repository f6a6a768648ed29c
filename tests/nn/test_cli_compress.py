"""``edgenas graft`` / ``edgenas reparam`` and the model references behind them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli as run
from edgenas.errors import ModelSourceError
from edgenas.export import run_onnx
from edgenas.models import graft_loaded, load_model, save_model_file
from edgenas.nn import DominoPro, GraftedBlock, graftable_blocks
from edgenas.nn.testing import randomize_batchnorm
from edgenas.spaces import get_space, save_specs


def test_graft_then_reparam_round_trip(tmp_path, capsys) -> None:
    graft_file, onnx_file = tmp_path / "g.pt", tmp_path / "g.onnx"
    code, stdout, stderr = run(
        [
            "graft",
            "torchvision:mobilenet_v2",
            "--num-classes",
            "10",
            "--mask",
            "0" * 17,
            "-o",
            str(graft_file),
            "--json",
        ],
        capsys,
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert (report["blocks"], report["grafted"]) == (17, 17)
    # collapsing removes weights (three convs become one smaller conv per block) but never changes the classifier
    assert report["collapsed"]["params"] < report["original"]["params"]
    code, stdout, stderr = run(
        ["reparam", str(graft_file), "-o", str(onnx_file), "--check", "--resolution", "32", "--json"], capsys
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["check_rel_error"] < 1e-12
    assert report["onnx_rel_error"] < 1e-4
    # the ONNX graph has one conv per grafted block where the original had three
    import onnx

    convs = [n for n in onnx.load(str(onnx_file)).graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 + 17 + 1  # stem, one per block, head conv


def test_reparam_check_fails_above_tolerance(tmp_path, capsys) -> None:
    code, _, stderr = run(
        [
            "reparam",
            "torchvision:resnet18",
            "--num-classes",
            "10",
            "-o",
            str(tmp_path / "r.onnx"),
            "--check",
            "--max-error",
            "1e-30",
            "--resolution",
            "32",
        ],
        capsys,
    )
    assert code == 2
    assert "differs from the original" in stderr
    assert not (tmp_path / "r.onnx").exists()


def test_bad_references_give_one_clear_line(tmp_path, capsys) -> None:
    code, _, stderr = run(["graft", "torchvision:vgg16", "--mask", "all", "-o", str(tmp_path / "x.pt")], capsys)
    assert code == 2 and "not supported for grafting" in stderr
    code, _, stderr = run(
        ["graft", str(tmp_path / "missing.pt"), "--mask", "all", "-o", str(tmp_path / "x.pt")], capsys
    )
    assert code == 2 and "no model" in stderr
    code, _, stderr = run(["graft", "torchvision:resnet18", "--mask", "01", "-o", str(tmp_path / "x.pt")], capsys)
    assert code == 2 and "8 graftable blocks" in stderr
    assert not (tmp_path / "x.pt").exists()


def test_model_file_rebuilds_the_same_network(tmp_path) -> None:
    loaded = load_model("torchvision:resnet18", num_classes=10)
    graft_loaded(loaded, "01" * 4, pro=DominoPro(width=1.5, extra_pointwise=1))
    graft_loaded(loaded, "00000001")
    randomize_batchnorm(loaded.model)
    path = save_model_file(tmp_path / "m.pt", loaded)
    again = load_model(path)
    assert again.recipe == loaded.recipe
    assert sum(isinstance(m, GraftedBlock) for m in again.model.modules()) == 7
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), again.model.eval()(x))


def test_spec_files_and_training_runs_are_model_references(tmp_path) -> None:
    space = get_space("mbv2-cifar")
    spec = space.sample(0)[0]
    save_specs(tmp_path / "one.json", [spec])
    loaded = load_model(tmp_path / "one.json")
    assert loaded.resolution == 32 and loaded.recipe["arch"]["choices"]
    # a training run's model.pt: the arch and the weights
    from edgenas.spaces import spec_to_dict

    torch.save({"version": 1, "arch": spec_to_dict(spec), "model": loaded.model.state_dict()}, tmp_path / "model.pt")
    from_run = load_model(tmp_path)
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(loaded.model.eval()(x), from_run.model.eval()(x))
    with pytest.raises(ModelSourceError, match="num-classes"):
        load_model(tmp_path, num_classes=3)


def test_grafted_search_space_net_exports_through_onnx_runtime(tmp_path, capsys) -> None:
    space = get_space("mbv2-cifar")
    save_specs(tmp_path / "a.json", space.sample(1))
    code, _, stderr = run(["graft", str(tmp_path / "a.json"), "--mask", "all", "-o", str(tmp_path / "g.pt")], capsys)
    assert code == 0, stderr
    code, stdout, stderr = run(["reparam", str(tmp_path / "g.pt"), "-o", str(tmp_path / "g.onnx"), "--json"], capsys)
    assert code == 0, stderr
    report = json.loads(stdout)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    model = load_model(tmp_path / "g.pt").model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = run_onnx(tmp_path / "g.onnx", x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4
    assert report["onnx_rel_error"] < 1e-4 and report["grafted_blocks"] == len(
        graftable_blocks(load_model(tmp_path / "a.json").model)
    )

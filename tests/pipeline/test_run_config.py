"""The run configuration: every bad key is refused with one line naming it, exit 2, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli as run
from edgenas.pipeline import ConfigError, config_from_dict, describe_keys, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[train]\nepochz = 3\n", "train.epochz", "epochs"),
        ("[trian]\nepochs = 3\n", "trian", "train"),
        ('[train]\nepochs = "ten"\n', "train.epochs", "an integer"),
        ("[train]\nepochs = 0\n", "train.epochs", "[1, 10000]"),
        ("[budget]\nlatency_quantile = 1.5\n", "budget.latency_quantile", "[0, 1]"),
        ('[profile]\nsampling = "random"\n', "profile.sampling", "uniform, ordered, cover"),
        ('[space]\nname = "resnet"\n', "space.name", "mbv2-cifar"),
        ('[device]\nruntime = "tpu"\n', "device.runtime", "ort-cpu"),
        ("[search]\nepochs = 2\nwarmup_epochs = 2\n", "search.warmup_epochs", "below search.epochs"),
        ("[space]\noptions = { width = -1.0 }\n", "space.options", "width"),
        ('[device]\nremote = "ssh pi python runner.py"\n', "device.remote", "{dir}"),
        ("seed = true\n", "seed", "an integer"),
        ("[predictor]\nkind = 3\n", "predictor.kind", "a string"),
        ('[data]\npath = "/no/such/folder"\n', "data.path", "does not exist"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(tmp_path, capsys, toml, key, allowed):
    config = tmp_path / "bad.toml"
    config.write_text(toml + ("" if "[budget]" in toml else "[budget]\nlatency_quantile = 0.3\n"))
    code, _, err = run(["run", str(config), "-o", str(tmp_path / "run")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"'{key}'" in err and allowed in err, err
    assert not (tmp_path / "run").exists()


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[train\nepochs = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no configuration file"):
        load_config(tmp_path / "absent.toml")


def test_defaults_and_int_for_float():
    with pytest.raises(ConfigError, match=r"no \[budget\]"):
        config_from_dict({})
    config = config_from_dict({"budget": {"latency_ms": 2}, "space": {"options": {"width": 0.5}}})
    assert config.budget.latency_ms == 2.0 and isinstance(config.budget.latency_ms, float)
    assert config.train.epochs == 15 and config.space.options == {"width": 0.5}


@pytest.mark.parametrize("name", ["demo", "cifar10", "imagenet", "nb201"])
def test_shipped_configs_are_valid(name):
    load_config(REPO / "configs" / f"{name}.toml")


def test_documented_keys_match_the_config():
    """docs/run-config.md lists every key with its default (regenerate with tools/run_config_doc.py)."""
    text = (REPO / "docs" / "run-config.md").read_text()
    for key, default, meaning in describe_keys():
        assert f"| `{key}` | `{default!r}` | {meaning} |" in text, key


def test_a_config_of_the_correction_rounds_points_to_the_closed_loop():
    """search.correct_rounds was the landing before the head-to-head; with the new default landing it is refused
    with a pointer, and kept working under search.landing = 'correct'."""
    base = {"budget": {"latency_ms": 2.0}}
    with pytest.raises(ConfigError, match=r"'search.correct_rounds' goes with search.landing = 'correct'.*landing.md"):
        config_from_dict(base | {"search": {"correct_rounds": 3}})
    config = config_from_dict(base | {"search": {"correct_rounds": 3, "landing": "correct"}})
    assert config.search.landing == "correct" and config.search.correct_rounds == 3
    assert config_from_dict(base).search.landing == "close-loop" and config_from_dict(base).search.close_loop == 12

"""Algorithm 2 on a tiny net: every scored configuration meets the predicted constraint, the unmodified net competes,
the chosen spec trains as a spec file, a rerun resumes without probing, and the CLI writes its figure."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import run_cli as run
from edgenas.compress.channels import ChannelSearchConfig, TargetBelowChannelsError, channel_search
from edgenas.errors import SearchError
from edgenas.evolution import EvolutionConfig
from edgenas.spaces import get_space, load_specs, space_of
from edgenas.spaces.channels import SCALES, channel_space
from edgenas.train import load_dataset

BASE = get_space("mbv2-cifar", width=0.25, resolution=16)
ARCH = "k3e3-skip-k5e6-k7e3-k3e6-skip-skip-k5e3-k3e3-k3e3-k3e3-k3e3-k3e3-k3e3-k3e3-skip-k3e3-k3e3-k3e3-k3e3-k3e6"
SPEC = BASE.parse(ARCH)


class MeanScalePredictor:
    """A stand-in latency predictor: 1 ms times the mean scale of the configuration."""

    def __init__(self, space_hash: str) -> None:
        self.meta = type("Meta", (), {"space_hash": space_hash, "space": "channels"})()

    def predict(self, specs):
        return np.array([np.mean([SCALES[c] for c in s.choices]) for s in specs])


CONFIG = ChannelSearchConfig(
    target_ms=1.1,
    images=32,
    batch_size=8,
    epochs=2,
    evolution=EvolutionConfig(population=6, iterations=3, top_k=3, seed=0),
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("sample", image_size=16)


def test_every_candidate_meets_the_constraint_and_the_search_resumes(tmp_path, data):
    space = channel_space(SPEC)
    predictor = MeanScalePredictor(space.config_hash)
    probes = []
    summary = channel_search(SPEC, predictor, data, tmp_path, CONFIG, on_probe=lambda s, v: probes.append(s))
    assert summary["candidates"] == len(probes) <= 6 + 2 * 3
    assert all(h["cost"] <= 1.1 for h in summary["history"])
    assert summary["found"]["fitness"] >= summary["unmodified"]["fitness"]  # the unmodified net took part
    assert summary["unmodified"]["predicted_ms"] == pytest.approx(1.0)
    (chosen,) = load_specs(tmp_path / "arch.json")
    assert space_of(chosen) is space and str(chosen) == summary["found"]["channels"]
    assert (tmp_path / "channels.png").stat().st_size > 1000
    again = channel_search(SPEC, predictor, data, tmp_path, CONFIG, on_probe=lambda s, v: probes.append(s))
    assert again["evolution"]["scored_now"] == 0 and again["found"] == summary["found"]
    # its record holds fitness of this proxy and these probes: another setting is refused, naming it
    with pytest.raises(SearchError, match="other options: epochs=3"):
        channel_search(SPEC, predictor, data, tmp_path, replace(CONFIG, epochs=3))


def test_an_infeasible_unmodified_net_is_still_scored_and_a_wrong_predictor_refused(tmp_path, data):
    space = channel_space(SPEC)
    tight = replace(CONFIG, target_ms=0.9)
    summary = channel_search(SPEC, MeanScalePredictor(space.config_hash), data, tmp_path, tight)
    assert summary["unmodified"]["predicted_ms"] > 0.9 and summary["unmodified"]["fitness"] is not None
    assert summary["found"]["predicted_ms"] <= 0.9
    probes = []
    again = channel_search(
        SPEC, MeanScalePredictor(space.config_hash), data, tmp_path, tight, on_probe=lambda s, v: probes.append(s)
    )
    assert probes == [] and again["unmodified"] == summary["unmodified"]  # kept, not probed again
    with pytest.raises(TargetBelowChannelsError, match="below the narrowest channel configuration"):
        channel_search(
            SPEC, MeanScalePredictor(space.config_hash), data, tmp_path / "y", replace(CONFIG, target_ms=0.4)
        )
    with pytest.raises(SearchError, match="not on the channel space of this network"):
        channel_search(SPEC, MeanScalePredictor("another"), data, tmp_path / "x", CONFIG)


@pytest.mark.slow
def test_channels_command_profiles_fits_searches_and_measures(tmp_path, capsys):
    code, out, err = run(
        [
            "channels", ARCH, "--space", "mbv2-cifar", "--set", "width=0.25", "--set", "resolution=16",
            "--target-ms", "100", "-o", str(tmp_path / "run"), "--profile-n", "12", "--warmup", "1", "--repeats", "3",
            "--population", "3", "--iterations", "2", "--top-k", "1", "--images", "16", "--batch-size", "8",
            "--epochs", "2", "--data", "sample", "--json",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["found"]["measured_ms"] > 0 and summary["unmodified"]["measured_ms"] > 0
    assert (tmp_path / "run" / "predictor.pt").is_file() and (tmp_path / "run" / "store.sqlite").is_file()
    assert summary["target_ms"] == 100 and summary["found"]["predicted_ms"] <= 100


def test_an_equality_constraint_starts_from_configurations_walked_to_the_target(tmp_path, data):
    """Under ``eq`` the first population holds configurations walked to within the tolerance of T, so a narrow band
    at the edge of the range still gets a search (uniform draws would rarely land in it)."""
    from edgenas.predictors import ArchTable, FitConfig, fit_predictor

    space = channel_space(SPEC)
    specs = space.sample(seed=0, n=60) + [space.uniform(s) for s in SCALES]
    values = np.array([np.mean([SCALES[c] for c in s.choices]) for s in specs])  # mean scale, as the stub
    predictor = fit_predictor("lut", ArchTable(space, specs, values, "latency_ms", "toy"), FitConfig(seed=0))
    target = float(predictor.predict(space.uniform(0.75)))  # near the narrow end: few random draws come this close
    config = replace(CONFIG, target_ms=target, constraint="eq", tolerance=0.02)
    probes = []
    summary = channel_search(SPEC, predictor, data, tmp_path, config, on_probe=lambda s, v: probes.append(s))
    assert all(abs(h["cost"] / target - 1) <= 0.02 for h in summary["history"])
    assert len(summary["evolution"]["generations"][0]["population"]) >= 4


def test_a_device_slower_than_the_predictor_gets_the_found_configuration_landed_under_t(tmp_path, data):
    """The channel search's result lands by the closed loop (``le``): on a device 30% slower than its predictor the
    found configuration misses T and the landed one, a few scales narrower, meets it; the unmodified net is
    measured beside it."""
    from edgenas.hardware.device import SimulatedDevice
    from edgenas.predictors import ArchTable, FitConfig, fit_predictor

    space = channel_space(SPEC)
    specs = space.sample(seed=0, n=60) + [space.uniform(s) for s in SCALES]

    def mean_scale(spec) -> float:
        return float(np.mean([SCALES[c] for c in spec.choices]))

    predictor = fit_predictor(
        "lut", ArchTable(space, specs, np.array([mean_scale(s) for s in specs]), "latency_ms", "toy"), FitConfig()
    )
    device = SimulatedDevice(lambda spec: 1.3 * mean_scale(spec))
    summary = channel_search(SPEC, predictor, data, tmp_path, CONFIG, device=device)
    landing, found = summary["landing"], summary["found"]
    assert landing["within_tolerance"] and found["measured_ms"] <= 1.1 * 1.02
    assert summary["searched"] is not None and summary["searched"]["channels"] != found["channels"]
    assert 1.3 * summary["searched"]["cost"] > 1.1 * 1.02  # the search's own result missed T on this device
    assert summary["unmodified"]["measured_ms"] == pytest.approx(1.3)
    assert found["fitness"] is not None and str(load_specs(tmp_path / "arch.json")[0]) == found["channels"]

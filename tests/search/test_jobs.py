"""Job files: what torchrun ranks run for edgenas run's data-parallel stages — written and read back exactly, refused
in one line when edgenas did not write them, and run to the same search as the library call."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from _toy import toy_predictor

from conftest import run_cli as run
from edgenas.errors import EdgeNASError
from edgenas.jobs import SearchJob, TrainJob, load_job, save_job
from edgenas.search.config import SearchConfig
from edgenas.train import TrainConfig


def test_jobs_round_trip_with_their_configs(tmp_path):
    config = SearchConfig(method="fbnet", epochs=3, warmup_epochs=1, supernet_options={"cells_per_stage": 1})
    search = SearchJob("nb201", {"channels": 4}, asdict(config), [{"predictor": "p.pt", "value": 4.0}], None, "out")
    train = TrainJob("arch.json", asdict(TrainConfig(epochs=2, lr=0.05)), "data", "run", resume=True)
    for job in (search, train):
        assert load_job(save_job(job, tmp_path / f"{job.kind}.json")) == job
    assert SearchConfig(**load_job(tmp_path / "search.json").config) == config
    assert TrainConfig(**load_job(tmp_path / "train.json").config) == TrainConfig(epochs=2, lr=0.05)


@pytest.mark.parametrize(
    "text", ["", "{", "[]", json.dumps({"kind": "deploy"}), json.dumps({"kind": "train", "arch": "a", "bogus": 1})]
)
def test_a_file_edgenas_did_not_write_is_refused(tmp_path, text, capsys):
    path = tmp_path / "job.json"
    path.write_text(text)
    with pytest.raises(EdgeNASError, match="not a job file written by edgenas"):
        load_job(path)
    code, _, err = run(["job", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a job file" in err


def test_a_search_job_runs_the_search_it_records(tmp_path, capsys):
    from edgenas.search.engine import search
    from edgenas.spaces import get_space
    from edgenas.train import load_dataset

    space = get_space("mbv2-cifar", width=0.25, resolution=16)
    predictor = toy_predictor(space).save(tmp_path / "p.pt")
    config = SearchConfig.for_space(space, epochs=2, warmup_epochs=1, batch_size=16, train_subset=32, device="cpu")
    job = SearchJob(
        "mbv2-cifar",
        {"width": 0.25, "resolution": 16},
        asdict(config),
        [{"predictor": str(predictor), "value": 2.5}],
        "sample",
        str(tmp_path / "job"),
    )
    code, out, err = run(["job", str(save_job(job, tmp_path / "job.json"))], capsys)
    assert code == 0, err
    from edgenas.predictors import Predictor
    from edgenas.search.config import Target

    direct = search(
        space,
        [Target(Predictor.load(predictor), 2.5)],
        load_dataset("sample", image_size=16),
        config,
        tmp_path / "direct",
    )
    assert json.loads(out)["arch"] == direct.summary["arch"] and json.loads(out)["run_dir"] == str(tmp_path / "job")

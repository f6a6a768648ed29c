"""The predictor stage with ``predictor.kind = "auto"``: it fits the kind the validation split of the fitted archs
scores best, records every kind's scores, and the report shows them (with a warning when the held-out Spearman is
weak)."""

from __future__ import annotations

import pytest
from _pipeline import tiny_config

from edgenas.pipeline import read_run
from edgenas.pipeline._stage import StageContext, StageRecord
from edgenas.pipeline.stages_measure import PredictorStage
from edgenas.predictors import Predictor
from edgenas.report.html import WEAK_SPEARMAN, _weak_predictor

pytestmark = pytest.mark.xdist_group("finished-run")


def test_auto_fits_the_kind_its_validation_split_scores_best(tmp_path, finished_run) -> None:
    stages = {s["name"]: s for s in read_run(finished_run)["stages"]}
    profile = stages["profile"]
    record = StageRecord("profile", profile["key"], finished_run / "stages" / profile["dir"], profile, 0.0)
    config = tiny_config(profile={"n": 12}, predictor={"kind": "auto", "epochs": 20, "train_size": 0.75})
    (tmp_path / "predictor").mkdir()
    out = PredictorStage().run(StageContext(config, tmp_path, tmp_path / "predictor", {"profile": record}))
    chosen = out["chosen_by"]
    assert set(chosen) == {"lut", "mlp", "gnn"}
    best = max(chosen, key=lambda k: (round(chosen[k]["spearman"], 3), -chosen[k]["mape"]))
    assert out["kind"] == best == Predictor.load(tmp_path / "predictor" / out["files"]["predictor"]).meta.kind
    assert _weak_predictor({"spearman": WEAK_SPEARMAN - 0.1}).startswith('<p class="miss">')
    assert _weak_predictor({"spearman": WEAK_SPEARMAN}) == ""

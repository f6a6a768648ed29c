"""Stage options of issue 29, run on a finished tiny run's stages: ``predictor.kind = "auto"`` fits the kind its
validation split scores best (and the report warns on a weak held-out Spearman); ``search.oneshot_candidates`` keeps
the one-shot ranking to the archs of the found one's latency."""

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


def test_the_oneshot_ranking_can_keep_to_the_archs_of_the_found_ones_latency(tmp_path, finished_run) -> None:
    """``search.oneshot_candidates = N`` ranks only the N profiled archs of latency nearest the found arch's (the
    demo's budget: the ranking of the whole profile took longer than the search)."""
    import json
    import math
    import shutil

    from edgenas.pipeline.stages_measure import run_images, run_space
    from edgenas.pipeline.stages_search import CANDIDATES_FILE, SearchStage, search_config
    from edgenas.spaces import load_specs

    stages = {s["name"]: s for s in read_run(finished_run)["stages"]}
    search_dir = tmp_path / "search-stage"
    shutil.copytree(finished_run / "stages" / stages["search"]["dir"], search_dir)
    everything = json.loads((search_dir / CANDIDATES_FILE).read_text())
    (search_dir / CANDIDATES_FILE).unlink()
    profile = stages["profile"]
    record = StageRecord("profile", profile["key"], finished_run / "stages" / profile["dir"], profile, 0.0)
    config = tiny_config(search={"oneshot_candidates": 4})
    ctx = StageContext(config, tmp_path, search_dir, {"profile": record})
    space = run_space(config)
    arch = load_specs(search_dir / "search" / "arch.json")[0]
    found_ms = stages["search"]["measured"]["median_ms"]
    rows = SearchStage._candidates(ctx, space, search_config(config), run_images(config), arch, found_ms)
    profiled = [r for r in everything if r["source"] == "profile"]
    nearest = sorted(profiled, key=lambda r: abs(math.log(r["measured_ms"] / found_ms)))[:4]
    assert {r["arch"] for r in rows[:-1]} == {r["arch"] for r in nearest}
    assert rows[-1]["source"] == "search" and len(rows) == 5


def test_the_search_uses_the_runs_subset_unless_told_otherwise() -> None:
    """``data.subset`` is what the run trains on; the search reads it too when ``search.subset`` is 0 (the CIFAR-10 CPU
    config once searched on all 50,000 images while it trained on 5,000)."""
    from edgenas.pipeline.stages_search import search_config

    assert search_config(tiny_config(data={"subset": 300}, search={"subset": 0})).train_subset == 300
    assert search_config(tiny_config(data={"subset": 300}, search={"subset": 100})).train_subset == 100
    assert search_config(tiny_config(data={"subset": 0}, search={"subset": 0})).train_subset == 0

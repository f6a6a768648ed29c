"""The report in a real browser: headless Chromium renders every figure of a tiny run's page and fetches nothing
from the network; the screenshot is kept as an artifact (``runs/test-artifacts/report.png``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "runs" / "test-artifacts"
#: The figures of a finished run: predictor, trajectory, architecture, training, baseline, compression and Pareto.
FIGURES = {"levels", "predictor", "trajectory", "architecture", "training", "baseline", "domino", "pareto"}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium here: `make test` installs Debian's chromium where apt can; install it to run this")
    return path


@pytest.mark.slow
@pytest.mark.xdist_group("finished-run")  # with the other users of `finished_run` (see test_run_resume.py)
def test_report_renders_offline_in_chromium(finished_run):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    page_url = (finished_run / "report.html").resolve().as_uri()
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_url, wait_until="load")
        figures = page.eval_on_selector_all(
            "figure[data-figure] img",
            "imgs => imgs.map(i => ({name: i.closest('figure').dataset.figure, ok: i.complete && i.naturalWidth > 0,"
            " width: i.naturalWidth}))",
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert {f["name"] for f in figures} == FIGURES
    assert all(f["ok"] and f["width"] > 200 for f in figures), figures
    fetched = [u for u in requests if not u.startswith("data:") and u != page_url]
    assert fetched == [], f"the report fetched {fetched}"
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000

"""The run report: a self-contained static HTML page of a run directory (``edgenas report RUN_DIR``), and the
figures that runs and searches draw.

The page's names are loaded on first use (PEP 562), so importing a figure module of this package (a search imports
:mod:`edgenas.report.search_plots`) does not load the page and its plotting library."""

from __future__ import annotations

from typing import Any

__all__ = ["REPORT_FILE", "render_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgenas.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'edgenas.report' has no attribute {name!r}")

"""The run report: a self-contained static HTML page of a run directory (``edgenas report RUN_DIR``)."""

from edgenas.report.html import REPORT_FILE, render_report, write_report

__all__ = ["REPORT_FILE", "render_report", "write_report"]

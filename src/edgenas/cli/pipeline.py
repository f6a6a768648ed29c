"""``edgenas run CONFIG.toml`` (the whole pipeline, resumable) and ``edgenas report RUN_DIR`` (its HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import app, emit_json, err, out
from edgenas.cli._options import JsonOpt, run_dir
from edgenas.cli._progress import progress_bar


class _Display:
    """The run's events on the terminal: one line per stage, a bar inside it, warnings in yellow."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def stage_start(self, name: str, key: str, reused: bool) -> None:
        if self.quiet:
            return
        if reused:
            err.print(f"[dim]{name}: complete for these inputs ({key[:12]}), reused[/dim]")
            return
        err.print(f"[bold]{name}[/bold] ({key[:12]})")
        self.progress = progress_bar(f"[bold]{name}", "{task.fields[text]}", quiet=False)
        self.task = self.progress.add_task(name, total=None, text="")
        self.progress.start()

    def progress_update(self, done: int, total: int | None, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total, text=text)

    def stage_end(self, record: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if not self.quiet and not record.reused:
            err.print(f"  {record.name} done in {record.seconds:.0f} s: {_headline(record.name, record.outputs)}")

    def warn(self, text: str) -> None:
        if not self.quiet:
            err.print(f"[yellow]warning:[/yellow] {text}")


def _events(display: _Display) -> Any:
    from edgenas.pipeline import Events

    class _Bridge(Events):
        def stage_start(self, name: str, key: str, reused: bool) -> None:
            display.stage_start(name, key, reused)

        def stage_end(self, record: Any) -> None:
            display.stage_end(record)

        def progress(self, stage: str, done: int, total: int | None, text: str = "") -> None:
            display.progress_update(done, total, text)

        def warn(self, text: str) -> None:
            display.warn(text)

    return _Bridge()


def _headline(stage: str, o: dict[str, Any]) -> str:
    """One line of what a stage found."""
    lines = {
        "profile": lambda: (
            f"{o['measured']} archs on {o['device']}, {o['latency_ms']['min']:.3f}..{o['latency_ms']['max']:.3f} ms"
        ),
        "predictor": lambda: (
            f"{o['kind']} Spearman {o['scores']['spearman']:.3f}, MAPE {o['scores']['mape']:.1f}% "
            f"on {o['test']} held-out archs"
        ),
        "search": lambda: (
            f"{o['arch']} for T = {o['target_ms']:g} ms: predicted {o['predicted_ms']:.3f} ms, "
            f"measured {o['measured']['median_ms']:.3f} ms ({o['measured']['error']:+.1%})"
        ),
        "train": lambda: (
            f"test top-1 {o['final']['test_top1']:.2f}% after {o['epochs']} epochs "
            f"(chance {o['final']['chance_top1']:.0f}%)"
        ),
        "baseline": lambda: (
            o.get("verdict")
            or f"{o['epochs']} epochs each: found {o['found_top1']:.2f}% vs random mean {o['random_mean_top1']:.2f}% "
            f"(best {o['random_best_top1']:.2f}%) of {len(o['rows']) - 1} archs of its latency"
            if o["rows"]
            else o["reason"]
        ),
        "compress": lambda: ("applied: " if o["applied"] else "not applied: ") + o["reason"],
        "export": lambda: f"{o['files']['onnx']} from the {o['from']} stage, {o['mult_adds'] / 1e6:.1f} M mult-adds",
        "check": lambda: (
            f"measured {o['measured_ms']:.3f} ms vs T {o['target_ms']:g} ms ({o['error']:+.1%}), top-1 {o['top1']:.2f}%"
        ),
    }
    return lines[stage]() if stage in lines else ""


@app.command("run")
def run_command(
    config: Annotated[Path, typer.Argument(help="The run's TOML configuration (see configs/).", dir_okay=False)],
    output: Annotated[
        Path | None, run_dir("--output", "-o", help="Run directory (default: runs/<config name>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in the directory (finished stages are reused).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Profile, fit, search, train, compress, export and check, as CONFIG says; writes RUN_DIR/report.html after
    every stage. Killed at any point, `--resume` continues from the last finished stage (and inside a stage from its
    last checkpoint); a changed CONFIG re-runs only the stages it touches."""
    from edgenas.pipeline import load_config, run_pipeline

    resolved = load_config(config)
    target = output or Path("runs") / config.stem
    display = _Display(quiet=as_json)
    try:
        result = run_pipeline(
            resolved, target, resume=resume, events=_events(display), config_text=config.read_text(encoding="utf-8")
        )
    finally:
        if display.progress is not None:
            display.progress.stop()
    check = result.records["check"].outputs
    if as_json:
        emit_json({"run_dir": str(result.run_dir), "report": str(result.report), "ran": result.ran, "check": check})
        return
    verdict = "met" if check["met"] else "missed"
    out.print(
        f"target {check['target_ms']:g} ms {verdict}: the deployed network runs in {check['measured_ms']:.3f} ms "
        f"({check['error']:+.1%}) with test top-1 {check['top1']:.2f}% (chance {check['chance_top1']:.0f}%)"
    )
    if check["advice"]:
        out.print(f"what to change: {check['advice']}")
    out.print(f"report: {result.report}")


@app.command("report")
def report_command(
    run: Annotated[Path, typer.Argument(help="A run directory of edgenas run.", file_okay=False, exists=True)],
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the self-contained HTML report of a run directory."""
    from edgenas.errors import EdgeNASError
    from edgenas.report import write_report

    if not (run / "config.json").is_file():
        raise EdgeNASError(f"{run} is not a run directory of edgenas run (no config.json)")
    path = write_report(run)
    if as_json:
        emit_json({"report": str(path)})
        return
    out.print(f"report: {path}")


@app.command("job", hidden=True)
def job_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A job file edgenas wrote (edgenas.jobs.save_job).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Run a job file on this process: what every torchrun rank runs for `edgenas run`'s search.nproc and
    train.nproc > 1 (rank 0 prints the result as JSON)."""
    from edgenas.jobs import run_job

    result = run_job(file)
    if result:  # rank 0 (the output is JSON with or without --json: the launcher reads it)
        emit_json(result)

"""The job behind every ``edgenas search`` command: build the targets, check before warning, search under a progress
bar, land the result on the device (:func:`edgenas.search.landing.land`) and print the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.cli._app import emit_json, err, out, parse_options
from edgenas.cli._progress import progress_bar


def step_state(entry: dict[str, Any], unit: str) -> str:
    """What the progress bar shows of a trajectory entry: the derived architecture's predictions and the
    multipliers when the search has targets, else its cross-entropy and alpha's entropy (nats)."""
    if entry.get("derived"):
        derived = ", ".join(f"{v:.4g}" for v in entry["derived"])
        return f"derived {derived} {unit}  lambda " + ", ".join(f"{v:+.3g}" for v in entry["lambda"])
    ce = entry.get("ce")
    return ("ce -" if ce is None else f"ce {ce:.3f}") + f"  entropy {entry.get('entropy', float('nan')):.3f}"


class SearchProgress:
    """One progress bar over all steps, with the derived architecture's prediction and lambda."""

    def __init__(self, total: int, quiet: bool, unit: str) -> None:
        self.unit = unit
        self.progress = progress_bar(
            "[bold]{task.fields[phase]} epoch {task.fields[epoch]}", "{task.fields[state]}", quiet=quiet
        )
        self.task = self.progress.add_task("search", total=total, phase="w", epoch=1, state="")
        self.progress.start()

    def __call__(self, entry: dict[str, Any]) -> None:
        self.progress.update(
            self.task,
            completed=entry["step"] + 1,
            phase=entry["phase"],
            epoch=entry["epoch"] + 1,
            state=step_state(entry, self.unit),
        )

    def close(self) -> None:
        self.progress.stop()


@dataclass(frozen=True)
class TargetArgs:
    """What a search command was asked to meet: a latency target (``--predictor``, ``--target-ms``) and/or an energy
    target (``--energy-predictor``, ``--target-mj``)."""

    predictor: Path | None
    target_ms: float | None
    target_mj: float | None = None
    energy_predictor: Path | None = None


@dataclass(frozen=True)
class LandingArgs:
    """How a search command lands its result on the device: ``--runtime`` or ``--remote`` (none: no landing),
    ``--tolerance``, ``--close-loop`` measurements (0: measure once), ``--loads``, ``--store``/``--store-device``."""

    runtime: str | None = None
    tolerance: float = 0.02
    close_loop: int = 0
    loads: int = 3
    store: Path | None = None
    store_device: str | None = None
    remote: str | None = None


def run_search(
    method: str,
    space: str,
    set_: list[str] | None,
    asked: TargetArgs,
    data: str | None,
    output: Path,
    options: dict[str, Any],
    landing: LandingArgs,
    resume: bool,
    as_json: bool,
) -> None:
    from edgenas.errors import SearchError
    from edgenas.predictors import Predictor
    from edgenas.search.engine import SearchConfig, Target
    from edgenas.spaces import get_space
    from edgenas.train import load_dataset

    resolved = get_space(space, **parse_options(set_))
    targets = []
    if asked.target_ms is not None:
        targets.append(Target(Predictor.load(asked.predictor), asked.target_ms))
    if asked.energy_predictor is not None and asked.target_mj is None:
        raise SearchError("--energy-predictor goes with --target-mj E (an energy target)")
    if asked.target_mj is not None:
        if asked.energy_predictor is None:
            raise SearchError("--target-mj needs --energy-predictor P.pt")
        targets.append(Target(Predictor.load(asked.energy_predictor), asked.target_mj))
    if not targets:
        raise SearchError("give --target-ms T (and/or --target-mj E with --energy-predictor)")
    if asked.target_ms is not None and targets[0].name != "latency_ms":
        raise SearchError(f"--predictor {asked.predictor} predicts {targets[0].name}, not latency_ms")
    from edgenas.train.distributed import init_distributed, shutdown_distributed

    config = SearchConfig.for_space(resolved, method=method, **options)
    _check_before_warning(resolved, targets, config, output, resume)
    images = load_dataset(data, image_size=resolved.resolution)
    env = init_distributed(config.device)
    warnings = _data_range_warnings(targets, resolved.name, quiet=as_json or not env.is_main)
    if resume and (output / "predictor_calibrated.pt").is_file():  # a run calibrated before --calibrate was removed
        targets[0] = Target(Predictor.load(output / "predictor_calibrated.pt"), targets[0].value)
    try:
        result = search_with_progress(
            resolved, targets, images, config, output, env=env, resume=resume, quiet=as_json, unit=targets[0].unit
        )
    finally:
        shutdown_distributed()
    if not env.is_main:
        return
    summary = _update_summary(output, warnings=warnings) if warnings else result.summary
    if landing.runtime is not None and (landing.close_loop or targets[0].name == "latency_ms"):
        summary = _land(output, resolved, targets, config, images, landing, as_json)
    elif landing.runtime is not None:  # an energy target measured once: its latency is recorded
        from edgenas.search.landing import measure_result

        device = search_device(landing, resolved, output)
        summary["measured"] = measure_result(result.arch, device, targets, landing.tolerance, output)
    if as_json:
        emit_json({"run_dir": str(output), **summary})
        return
    _print_summary(method, summary, landing.runtime, landing.tolerance, output)


def search_with_progress(
    space: Any,
    targets: list,
    images: Any,
    config: Any,
    output: Path,
    *,
    env: Any,
    resume: bool,
    quiet: bool,
    unit: str,
) -> Any:
    """The engine's search on this rank (``env`` from ``init_distributed``) under a progress bar that the main rank
    shows unless ``quiet``."""
    from edgenas.search.engine import search

    progress = SearchProgress(total_steps(config, images), quiet=quiet or not env.is_main, unit=unit)
    try:
        return search(space, targets, images, config, output, resume=resume, on_step=progress, dist_env=env)
    finally:
        progress.close()


def _print_summary(method: str, summary: dict[str, Any], runtime: str | None, tolerance: float, output: Path) -> None:
    """The search's outcome in plain lines: targets, warnings, the landing's measurements, the verdict."""
    out.print(f"{method}: derived {summary['arch']}")
    for t in summary["targets"]:
        out.print(
            f"  {t['metric']}: target {t['target']:.4g} {t['unit']}, predicted {t['predicted']:.4g} "
            f"({100 * t['predicted_error']:+.2f}%), lambda {t['lambda']:+.4g}; feasible {t['feasible_low']:.4g}.."
            f"{t['feasible_high']:.4g}"
        )
    for warning in summary.get("warnings", []):
        out.print(f"  [yellow]warning[/yellow]: {warning}")
    loop = summary.get("closed_loop")
    if loop:
        for i, m in enumerate(loop["measurements"]):
            out.print(
                f"  measured {i + 1}: {m['measured']:.4g} ({100 * m['error']:+.2f}%), predicted {m['predicted']:.4g}, "
                f"corrected {m['corrected']:.4g}, preference {m['score']:.3f}"
            )
        out.print(f"  closed loop: {loop['verdict']}; kept {loop['chosen']}")
    measured = summary.get("measured")
    if measured:
        verdict = "within" if measured["within_tolerance"] else "MISSES the target by more than"
        out.print(
            f"  measured on {runtime}: {measured['median_ms']:.4g} ms ({100 * measured['error']:+.2f}% vs target; "
            f"{verdict} ±{100 * tolerance:g}%)"
        )
        if not measured["within_tolerance"]:
            out.print(_miss_hint(summary, tolerance))
    out.print(f"run directory {output} (arch.json, summary.json, trajectory.jsonl, trajectory.png)")


def _miss_hint(summary: dict[str, Any], tolerance: float) -> str:
    """What to try after a measured miss."""
    loop = summary.get("closed_loop")
    if loop:
        return (
            "  the landing did not meet the target within its measurements: raise --close-loop, measure more archs "
            "near T into --store (edgenas profile --near T), or measure on a quieter machine (raise --loads)"
        )
    if abs(summary["targets"][0]["predicted_error"]) > tolerance:
        return (
            "  the search did not settle on the target (its own prediction is off too): give it more architecture "
            "steps (more epochs, a larger --val-fraction, a higher --alpha-lr)"
        )
    return "  the predictor is off for this arch on this device: land with --close-loop M (measured neighbours)"


def _check_before_warning(space: Any, targets: list, config: Any, output: Path, resume: bool) -> None:
    """What refuses a search (options, the predictors' space, a target out of reach, the run directory) is checked
    before any warning is printed: a user sees the error, not a warning about a search that will not run."""
    from edgenas.search.engine import check_run_dir, prepare_targets
    from edgenas.search.strategy import get_strategy

    config.check()
    if not (resume and (output / "predictor_calibrated.pt").is_file()):  # a resumed search keeps its scaled predictor
        prepare_targets(space, targets, get_strategy(config.method).constraint(config))
    check_run_dir(output, resume)


def _data_range_warnings(targets: list, space: str, quiet: bool) -> list[str]:
    """Warn (stderr, before the search) about targets outside the values their predictors were fitted on."""
    from edgenas.search.coverage import data_range_warning

    warnings = [w for t in targets if (w := data_range_warning(t.predictor, t.value, space=space))]
    for warning in warnings if not quiet else []:
        err.print(f"[yellow]warning[/yellow]: {warning}")
    return warnings


def search_device(landing: LandingArgs, space: Any, run: Path, *, energy: bool = False) -> Any:
    """The device a search lands on (a seam: the tests replace it with a simulated device): ``--remote CMD`` when
    given (its models exported under ``run/device``), else the runtime here; batch 1, one thread, the space's
    resolution (the protocol of the predictors' data)."""
    from edgenas.cli._device import command_device

    runtime = landing.runtime or "ort-cpu"
    return command_device(runtime, landing.remote, run / "device", resolution=space.resolution, energy=energy)


def _land(
    run: Path,
    space: Any,
    targets: list,
    config: Any,
    images: Any,
    landing: LandingArgs,
    as_json: bool,
) -> dict[str, Any]:
    """``--runtime RT``: :func:`edgenas.search.landing.land` on the first target, by the closed loop of
    ``--close-loop M`` measurements (0, and the commands without the option: one measurement), every measurement
    into ``--store`` when given, a spinner on stderr; the run's summary."""
    from edgenas.rundir import read_summary
    from edgenas.search.landing import LandingPolicy, land, metric_measurer, store_anchor, store_hook

    target, loads, budget = targets[0], landing.loads, landing.close_loop
    policy = LandingPolicy("close-loop" if budget else "measure", max(budget, 1), landing.tolerance, loads)
    runtime = landing.runtime or "ort-cpu"
    device = search_device(landing, space, run, energy=target.name != "latency_ms")
    if target.name == "latency_ms":  # beside the store's reference, read at its nominal level (issue 30)
        anchor = store_anchor(landing.store, landing.store_device, target.name, runtime, space, target.predictor)
        device = device.with_anchor(anchor)
    measure = metric_measurer(device, target.name, loads)
    record, prior = store_hook(landing.store, landing.store_device, target.name, runtime, space, measure)
    land(
        run,
        space,
        targets,
        config,
        measure,
        policy,
        runtime=device.name,
        data=images,
        record=record,
        prior=prior,
        status=err.status(f"landing on the device ({policy.mode})", spinner="dots") if not as_json else None,
    )
    return read_summary(run)


def _update_summary(run: Path, **fields: Any) -> dict[str, Any]:
    from edgenas.search.engine import update_summary

    return update_summary(run, **fields)


def total_steps(config: Any, images: Any) -> int:
    from edgenas.search.engine import total_steps

    return total_steps(config, images)

"""``edgenas search gdas|darts|random|...``: one command per registered strategy that has none of its own.

LightNAS and FBNet have their own commands (their multipliers and on-device loops take options of their own); every
other strategy of :func:`edgenas.search.list_strategies` gets the same set of options here: accuracy only by default,
or with ``--predictor P.pt --target-ms T`` the LightNAS latency term on top (thesis Table 4.3: GDAS and DARTS with
the learned trade-off). A strategy registered later gets its command without touching this module.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import emit_json, err, out, parse_options
from edgenas.cli._options import (
    AlphaScheduleOpt,
    BatchSizeOpt,
    DataOpt,
    DerivationOpt,
    FairWarmupOpt,
    JsonOpt,
    SearchSetOpt,
    SeedOpt,
    SetOpt,
    SubsetOpt,
    TorchDeviceOpt,
    input_file,
    number,
)
from edgenas.cli._search_job import SearchProgress, total_steps
from edgenas.cli.search import (
    MAX_LAMBDA,
    OutputOpt,
    ResumeOpt,
    SearchEpochsOpt,
    SearchSpaceOpt,
    TargetMsOpt,
    ValOpt,
    WarmupOpt,
    _common_options,
    search_app,
)
from edgenas.search import get_strategy, list_strategies

#: Strategies whose command lives in :mod:`edgenas.cli.search` (options of their own).
DEDICATED_COMMANDS = frozenset({"lightnas", "fbnet", "surgenas"})


def _search(
    name: str,
    space: str,
    set_: list[str] | None,
    search_set: list[str] | None,
    predictor: Path | None,
    target_ms: float | None,
    data: str | None,
    output: Path,
    options: dict[str, Any],
    resume: bool,
    as_json: bool,
) -> None:
    from edgenas.errors import SearchError
    from edgenas.predictors import Predictor
    from edgenas.search.engine import SearchConfig, Target
    from edgenas.spaces import get_space
    from edgenas.train import load_dataset

    if (predictor is None) != (target_ms is None):
        raise SearchError("a latency budget needs both --predictor P.pt and --target-ms T")
    resolved = get_space(space, **parse_options(set_))
    targets = [Target(Predictor.load(predictor), target_ms)] if predictor is not None else []
    config = SearchConfig.for_space(
        resolved, method=name, supernet_options=parse_options(search_set, "--search-set"), **options
    )
    config.check()
    images = load_dataset(data, image_size=resolved.resolution)
    strategy = get_strategy(name)
    if strategy.uses_supernet:
        progress = SearchProgress(total_steps(config, images), quiet=as_json, unit="ms")
        try:
            arch, summary = strategy.run(resolved, targets, images, config, output, resume=resume, on_step=progress)
        finally:
            progress.close()
    else:
        with err.status(f"{name} search", spinner="dots") if not as_json else nullcontext():
            arch, summary = strategy.run(resolved, targets, images, config, output, resume=resume)
    if as_json:
        emit_json({"run_dir": str(output), **summary})
        return
    out.print(f"{name}: derived {arch}")
    for t in summary.get("targets", []):
        out.print(f"  {t['metric']}: target {t['target']:.4g} {t['unit']}, predicted {t['predicted']:.4g}")
    out.print(f"  run directory: {output}")


def _strategy_command(name: str) -> Any:
    def command(
        space: SearchSpaceOpt,
        output: OutputOpt,
        data: DataOpt = None,
        set_: SetOpt = None,
        search_set: SearchSetOpt = None,
        predictor: Annotated[
            Path | None, input_file("--predictor", help="Latency predictor (.pt) of this space, for --target-ms.")
        ] = None,
        target_ms: TargetMsOpt = None,
        epochs: SearchEpochsOpt = 90,
        warmup_epochs: WarmupOpt = None,
        batch_size: BatchSizeOpt = 128,
        subset: SubsetOpt = None,
        val_fraction: ValOpt = 0.2,
        alpha_lr: Annotated[float, number("--alpha-lr", help="Adam lr of alpha.", high=10, low_open=True)] = 1e-3,
        alpha_lr_schedule: AlphaScheduleOpt = None,
        fair_warmup: FairWarmupOpt = False,
        derivation: DerivationOpt = None,
        lambda_p: Annotated[
            float, number("--lambda-p", help="Proportional gain of the latency multiplier.", high=MAX_LAMBDA)
        ] = 1000.0,
        no_accuracy: Annotated[bool, typer.Option("--no-accuracy", help="Drop CE from the alpha loss.")] = False,
        time_budget: Annotated[
            float, number("--time-budget", help="Wall-clock seconds of a search by time (random).", high=1e7)
        ] = 0.0,
        seed: SeedOpt = 0,
        device: TorchDeviceOpt = "auto",
        resume: ResumeOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        options = _common_options(epochs, warmup_epochs, batch_size, subset, val_fraction, seed, device)
        options.update(alpha_lr=alpha_lr, lambda_p=lambda_p, accuracy=not no_accuracy, time_budget_s=time_budget)
        options.update(alpha_lr_schedule=alpha_lr_schedule, fair_warmup=fair_warmup, derivation=derivation)
        _search(name, space, set_, search_set, predictor, target_ms, data, output, options, resume, as_json)

    strategy = get_strategy(name)
    command.__doc__ = (strategy.__doc__ or name).strip().replace("``", "").splitlines()[0]
    return command


for _name in list_strategies():
    if _name not in DEDICATED_COMMANDS:
        search_app.command(_name)(_strategy_command(_name))

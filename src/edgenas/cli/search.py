"""``edgenas search lightnas`` and ``edgenas search fbnet``: hardware-aware search on the shared supernet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgenas.cli._app import REMOVED_OPTIONS, parse_options, sub_app
from edgenas.cli._device import device_runtime
from edgenas.cli._options import (
    MAX_BATCH,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_MJ,
    MAX_MS,
    AlphaScheduleOpt,
    BatchSizeOpt,
    BudgetTermOpt,
    DataOpt,
    DerivationOpt,
    FairWarmupOpt,
    JsonOpt,
    RemoteOpt,
    SearchSetOpt,
    SeedOpt,
    SetOpt,
    SubsetOpt,
    ToleranceOpt,
    TorchDeviceOpt,
    choice,
    input_file,
    number,
    run_dir,
)
from edgenas.cli._search_job import LandingArgs, TargetArgs, run_search
from edgenas.search.landing import DEFAULT_LOOP_BUDGET as LOOP_BUDGET

search_app = sub_app(
    "search", "Architecture search on the shared supernet: LightNAS, and the FBNet, GDAS, DARTS and random baselines."
)

#: Bounds of the multiplier's settings; far beyond the thesis' values (eta_lambda 5e-4, gain 1000).
MAX_LAMBDA = 1e9

SearchSpaceOpt = Annotated[str, typer.Option("--space", "-s", help="Search space (edgenas space list).")]
PredictorOpt = Annotated[Path, input_file("--predictor", help="Latency predictor (.pt) of this space.")]
TargetMsOpt = Annotated[float | None, number("--target-ms", help="Latency target T (ms).", high=MAX_MS, low_open=True)]
TargetMjOpt = Annotated[
    float | None,
    number("--target-mj", help="Energy target (mJ); needs --energy-predictor.", high=MAX_MJ, low_open=True),
]
EnergyPredictorOpt = Annotated[
    Path | None, input_file("--energy-predictor", help="Energy predictor (.pt) of this space.")
]


LoopStoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", dir_okay=False, help="The landing's measurements go here; its rows near T seed the correction."
    ),
]
LoopStoreDeviceOpt = Annotated[str | None, typer.Option("--store-device", help="The device's name in --store.")]
CloseLoopOpt = Annotated[
    int | None,
    number(
        "--close-loop",
        help="With --runtime: measurements the landing on T may spend (measure the result, then the neighbours the "
        "search prefers, predicted by a locally corrected predictor; 0 = measure the result once; beyond the "
        f"thesis). Default: {LOOP_BUDGET} for a latency target, 0 for an energy target alone.",
        high=MAX_COUNT,
    ),
]
LoadsOpt = Annotated[
    int, number("--loads", help="--close-loop: median over this many loads per arch.", low=1, high=100)
]
#: Landing options removed after the head-to-head (benchmarks/results/landing.md); what replaces them.
_LANDED_BY_THE_LOOP = "--runtime RT lands with --close-loop M (default 12), which won benchmarks/results/landing.md"
REMOVED_OPTIONS.update(
    {
        ("search lightnas", option): _LANDED_BY_THE_LOOP
        for option in (
            "--refit",
            "--refit-rounds",
            "--refit-steps",
            "--settle-steps",
            "--calibrate",
            "--correct-rounds",
            "--correct-steps",
        )
    }
)


def _common_options(
    epochs: int,
    warmup_epochs: int | None,
    batch_size: int,
    subset: int | None,
    val_fraction: float,
    seed: int,
    device: str,
) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "warmup_epochs": warmup_epochs,
        "batch_size": batch_size,
        "train_subset": subset or 0,
        "val_fraction": val_fraction,
        "seed": seed,
        "device": device,
    }


WarmupOpt = Annotated[
    int | None,
    number(
        "--warmup-epochs",
        help="Weights-only epochs before the architecture phase. Default: the space's search loop (nb201: 0, "
        "NNI's DARTS loop; layer-wise spaces: 10, the thesis').",
        high=MAX_EPOCHS,
    ),
]
ValOpt = Annotated[
    float,
    number("--val-fraction", help="Held-out share for the architecture phase.", high=1, low_open=True, high_open=True),
]
RuntimeOpt = Annotated[
    str | None, typer.Option("--runtime", "-r", help="Measure the derived arch with this runtime (e.g. ort-cpu).")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the search in the output directory.")]
OutputOpt = Annotated[Path, run_dir("--output", "-o", help="Run directory.")]
SearchEpochsOpt = Annotated[int, number("--epochs", help="Total epochs (thesis: 90).", low=1, high=MAX_EPOCHS)]


@search_app.command("lightnas")
def lightnas_command(
    space: SearchSpaceOpt,
    predictor: PredictorOpt,
    output: OutputOpt,
    target_ms: TargetMsOpt = None,
    target_mj: TargetMjOpt = None,
    energy_predictor: EnergyPredictorOpt = None,
    data: DataOpt = None,
    set_: SetOpt = None,
    search_set: SearchSetOpt = None,
    epochs: SearchEpochsOpt = 90,
    warmup_epochs: WarmupOpt = None,
    batch_size: BatchSizeOpt = 128,
    subset: SubsetOpt = None,
    val_fraction: ValOpt = 0.2,
    constraint: Annotated[
        str, choice("--constraint", values=("eq", "le"), help="Meet T (eq) or stay at most T (le).")
    ] = "eq",
    no_accuracy: Annotated[bool, typer.Option("--no-accuracy", help="Drop CE from the alpha loss.")] = False,
    lambda_lr: Annotated[float, number("--lambda-lr", help="eta_lambda (thesis 5e-4).", high=MAX_LAMBDA)] = 5e-4,
    lambda_p: Annotated[
        float, number("--lambda-p", help="Proportional gain (0 = thesis Eq 4.11).", high=MAX_LAMBDA)
    ] = 1000.0,
    alpha_batch_size: Annotated[
        int, number("--alpha-batch-size", help="Images per alpha step (0 = --batch-size).", high=MAX_BATCH)
    ] = 0,
    alpha_lr: Annotated[
        float,
        number(
            "--alpha-lr", help="Adam lr of alpha (thesis 1e-3; raise it for short searches).", high=10, low_open=True
        ),
    ] = 1e-3,
    alpha_lr_schedule: AlphaScheduleOpt = None,
    fair_warmup: FairWarmupOpt = False,
    derivation: DerivationOpt = None,
    budget_term: BudgetTermOpt = "loss",
    runtime: RuntimeOpt = None,
    remote: RemoteOpt = None,
    tolerance: ToleranceOpt = 0.02,
    store: LoopStoreOpt = None,
    store_device: LoopStoreDeviceOpt = None,
    close_loop: CloseLoopOpt = None,
    loads: LoadsOpt = 3,
    seed: SeedOpt = 0,
    device: TorchDeviceOpt = "auto",
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """LightNAS: one single-path search whose derived architecture meets the target (thesis Ch 4)."""
    from edgenas.errors import SearchError

    runtime = device_runtime(runtime, remote)
    if close_loop is not None and runtime is None:
        raise SearchError("--close-loop needs --runtime (it measures the search's result and its neighbours)")
    if close_loop is None:
        close_loop = LOOP_BUDGET if target_ms is not None else 0
    if (runtime is None or not close_loop) and (store is not None or store_device is not None):
        raise SearchError("--store and --store-device go with the landing (--runtime RT, --close-loop M > 0)")
    if budget_term == "landing" and (runtime is None or not close_loop):
        raise SearchError(
            "--budget-term landing searches alpha for accuracy alone; the closed loop meets T: give --runtime RT "
            "(and --close-loop M > 0)"
        )
    if remote is not None and store is not None and store_device is None:
        raise SearchError("--store with --remote needs --store-device NAME (the remote device's name in the store)")
    options = _common_options(epochs, warmup_epochs, batch_size, subset, val_fraction, seed, device)
    options.update(
        budget_term=budget_term,
        constraint=constraint,
        accuracy=not no_accuracy,
        lambda_lr=lambda_lr,
        lambda_p=lambda_p,
        alpha_lr=alpha_lr,
        alpha_batch_size=alpha_batch_size,
        alpha_lr_schedule=alpha_lr_schedule,
        fair_warmup=fair_warmup,
        derivation=derivation,
        supernet_options=parse_options(search_set, "--search-set"),
    )
    asked = TargetArgs(predictor, target_ms, target_mj, energy_predictor)
    landing = LandingArgs(runtime, tolerance, close_loop, loads, store, store_device, remote)
    run_search("lightnas", space, set_, asked, data, output, options, landing, resume, as_json)


@search_app.command("fbnet")
def fbnet_command(
    space: SearchSpaceOpt,
    predictor: PredictorOpt,
    output: OutputOpt,
    lambda_: Annotated[float, number("--lambda", help="The fixed trade-off lambda.", high=MAX_LAMBDA)],
    target_ms: TargetMsOpt = None,
    data: DataOpt = None,
    set_: SetOpt = None,
    epochs: SearchEpochsOpt = 90,
    warmup_epochs: WarmupOpt = None,
    batch_size: BatchSizeOpt = 128,
    subset: SubsetOpt = None,
    val_fraction: ValOpt = 0.2,
    fair_warmup: FairWarmupOpt = False,
    runtime: RuntimeOpt = None,
    remote: RemoteOpt = None,
    tolerance: ToleranceOpt = 0.02,
    seed: SeedOpt = 0,
    device: TorchDeviceOpt = "auto",
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """FBNet baseline: multi-path Gumbel mixing with a fixed lambda on the loss lambda * (LAT / T - 1)."""
    runtime = device_runtime(runtime, remote)
    options = _common_options(epochs, warmup_epochs, batch_size, subset, val_fraction, seed, device)
    options.update(lambda_init=lambda_, fair_warmup=fair_warmup)
    landing = LandingArgs(runtime, tolerance, remote=remote)
    run_search("fbnet", space, set_, TargetArgs(predictor, target_ms), data, output, options, landing, resume, as_json)

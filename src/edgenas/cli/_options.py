"""The CLI's vocabulary: one option per concept, shared by every command, validated while the command line is parsed.

A command declares its options with the aliases below (or the :func:`number`, :func:`choice` and path helpers),
so a new command cannot drift from the names in ``docs/cli.md``'s table, and bad values are refused before any work
starts or any file is created:

- every number is finite and inside a declared, closed or open, range (NaN, inf and absurd sizes are refused with
  the option's name; ``tests/test_cli_fuzz.py`` checks that every numeric option of every command is built here);
- every choice names its allowed values;
- every input path must exist with the right kind (file or folder), every output file must not be a folder.

Names (see "CLI vocabulary" in ``docs/cli.md``): ``--device`` is where PyTorch computes (auto/cpu/cuda); ``--store`` the
measurement store; ``--store-device`` a device *in the store*; ``--batch-size`` the images of one training or
evaluation step; ``--input-batch`` the batch dimension of a measured or exported graph; ``--tolerance`` the accepted
relative miss of a latency against its target; ``--max-error`` the accepted relative numeric error of an exported
or collapsed network against PyTorch; ``--output/-o`` what a command writes; ``--plot`` a PNG it may also write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

#: Largest seed: numpy's generators take 32-bit seeds.
MAX_SEED = 2**32 - 1
#: Upper bounds for counts a user may ask for; far beyond any sensible run, low enough to refuse typos such as 1e30.
MAX_EPOCHS = 100_000
MAX_CELLS_PER_STAGE = 64  # repeated cells per stage of a cell network (the benchmark: 5)
MAX_BATCH = 65_536
MAX_COUNT = 10_000_000
MAX_SAMPLES = 1_000_000  # architectures sampled at once (each spec is held in memory)
MAX_RESOLUTION = 8_192
MAX_THREADS = 1_024
MAX_TIMED_RUNS = 1_000_000
MAX_MS = 1e7  # a latency target (ms): under three hours per image
MAX_MJ = 1e9  # an energy target (mJ)


def _number_text(value: float | None, none: str) -> str:
    if value is None:
        return none
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e12 else f"{value:g}"


def _bounds_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"{left}{_number_text(low, '-inf')}, {_number_text(high, 'inf')}{right}"


def _number_check(
    low: float | None, high: float | None, low_open: bool, high_open: bool
) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A parse-time callback refusing non-finite values and values outside the bounds (None passes: 'not given')."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            bad = not math.isfinite(v)
            bad = bad or (low is not None and (v <= low if low_open else v < low))
            bad = bad or (high is not None and (v >= high if high_open else v > high))
            if bad:
                raise typer.BadParameter(
                    f"must be a finite number in {_bounds_text(low, high, low_open, high_open)}, got {v}"
                )
        return value

    check.edgenas_number = True  # type: ignore[attr-defined]  # the fuzz suite checks every numeric option has it
    return check


def number(
    *decls: str,
    help: str,
    low: float | None = 0,
    high: float | None,
    low_open: bool = False,
    high_open: bool = False,
    **kwargs: Any,
) -> Any:
    """A ``typer.Option`` for an int or float: finite and within ``[low, high]`` (``low_open``/``high_open``: strict).

    Both bounds are required by design (``high`` has no default) so that every number of the CLI has a range.
    """
    return typer.Option(
        *decls,
        help=f"{help} Range {_bounds_text(low, high, low_open, high_open)}.",
        callback=_number_check(low, high, low_open, high_open),
        **kwargs,
    )


def choice(*decls: str, values: Sequence[str], help: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for a string that must be one of ``values`` (checked at parse time, listed in the help)."""
    allowed = tuple(values)

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v not in allowed:
                raise typer.BadParameter(f"{v!r} is not one of {', '.join(allowed)}")
        return value

    return typer.Option(*decls, help=f"{help} One of: {', '.join(allowed)}.", callback=check, **kwargs)


def input_file(*decls: str, help: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for a file that must exist (folders refused at parse time)."""
    return typer.Option(*decls, help=help, exists=True, dir_okay=False, **kwargs)


def output_file(*decls: str, help: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for a file a command writes (an existing folder is refused at parse time)."""
    return typer.Option(*decls, help=help, dir_okay=False, **kwargs)


def run_dir(*decls: str, help: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for a run directory a command writes (an existing file is refused at parse time)."""
    return typer.Option(*decls, help=help, file_okay=False, **kwargs)


# ----- the concepts --------------------------------------------------------------------------------------------
TORCH_DEVICES = ("auto", "cpu", "cuda")
METRICS = ("latency_ms", "energy_mJ")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout (errors too) instead of text.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Space option, e.g. --set width=0.5 (repeatable; JSON values)."),
]
FairWarmupOpt = Annotated[
    bool,
    typer.Option(
        "--fair-warmup/--no-fair-warmup",
        help="Warm-up steps train every op of every layer once (the authors' LightNAS code), not one sampled path.",
    ),
]
DerivationOpt = Annotated[
    str | None,
    choice(
        "--derivation",
        values=("argmax", "nonzero"),
        help="How the architecture is read from alpha: the most likely op per layer, or the most likely op that is "
        "not a zero op (DARTS' rule; nb201's none). Default: the strategy's (darts: nonzero; the others: argmax).",
    ),
]
BudgetTermOpt = Annotated[
    str,
    choice(
        "--budget-term",
        values=("loss", "landing"),
        help="Where the target acts: in alpha's loss (thesis Eq 4.10, the default) or only in the closed-loop "
        "landing (alpha searches for accuracy alone; the landing walks to the arch it prefers at T).",
    ),
]
AlphaScheduleOpt = Annotated[
    str | None,
    choice(
        "--alpha-lr-schedule",
        values=("cosine", "constant"),
        help="alpha's lr: cosine decay to 0, or constant (NAS-Bench-201's DARTS/GDAS). Default: the space's search "
        "loop (nb201: constant; layer-wise spaces: cosine, the thesis').",
    ),
]
#: How archs are drawn for profiling or a sample file (thesis Sec 3.3.5: ordered, every op equally often per layer).
ARCH_SAMPLINGS = ("uniform", "ordered")
ArchSamplingOpt = Annotated[
    str,
    choice(
        "--sampling",
        values=ARCH_SAMPLINGS,
        help="uniform (independent per layer) or ordered (groups in which every op of every layer appears once; "
        "SurgeNAS' predictor data).",
    ),
]
SearchSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--search-set",
        metavar="KEY=VALUE",
        help="Space option of the searched network only, e.g. --search-set cells_per_stage=1 for a shallower "
        "supernet than the deployed network (repeatable; the found arch stays the --set space's).",
    ),
]
SpaceOpt = Annotated[
    str | None, typer.Option("--space", "-s", help="Space of ARCH when ARCH is an arch string or an NB201 index.")
]
SpaceArg = Annotated[str, typer.Argument(help="Registered space name (edgenas space list).")]
ArchArg = Annotated[str, typer.Argument(help="A spec file (.json/.jsonl) or an arch string with --space.")]
IndexOpt = Annotated[int, number("--index", help="Which spec of a multi-spec file (0-based).", high=MAX_COUNT)]
SeedOpt = Annotated[int, number("--seed", help="Random seed.", high=MAX_SEED)]
TorchDeviceOpt = Annotated[str, choice("--device", values=TORCH_DEVICES, help="Where PyTorch computes.")]

StoreOpt = Annotated[Path, input_file("--store", help="Measurement store (SQLite file).")]
NewStoreOpt = Annotated[Path, output_file("--store", help="Measurement store (SQLite file; created when absent).")]
StoreDeviceOpt = Annotated[str, typer.Option("--store-device", help="A device's name in the measurement store.")]
MetricOpt = Annotated[str, choice("--metric", values=METRICS, help="What the values measure.")]

RuntimeOpt = Annotated[
    str, typer.Option("--runtime", "-r", help="Inference runtime: ort-cpu, ort-cuda, torch-cpu or torch-cuda.")
]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        metavar="CMD",
        help="Measure on a device that cannot run edgenas: a command that runs the stand-alone runner there on {dir} "
        "(the exported models; {runner} is the runner's path here), e.g. 'ssh pi python3 runner.py {dir}' "
        "(docs/devices.md). The runner times ONNX Runtime on the CPU (--runtime ort-cpu).",
    ),
]
InputBatchOpt = Annotated[
    int,
    number("--input-batch", help="Batch dimension of the measured or exported graph (images).", low=1, high=MAX_BATCH),
]
ResolutionOpt = Annotated[
    int | None,
    number("--resolution", help="Input side (px); default: the space's or the model's.", low=1, high=MAX_RESOLUTION),
]
ThreadsOpt = Annotated[
    int, number("--threads", help="CPU intra-op threads of the runtime (0: its default).", high=MAX_THREADS)
]
WarmupRunsOpt = Annotated[int, number("--warmup", help="Untimed runs before timing.", high=MAX_TIMED_RUNS)]
RepeatsOpt = Annotated[int, number("--repeats", help="Timed runs per attempt.", low=3, high=MAX_TIMED_RUNS)]
EnergyOpt = Annotated[
    bool, typer.Option("--energy/--no-energy", help="Also measure energy where a counter exists (NVML/RAPL).")
]

BatchSizeOpt = Annotated[
    int, number("--batch-size", help="Images per training or evaluation step (global).", low=1, high=MAX_BATCH)
]
EpochsOpt = Annotated[int, number("--epochs", help="Epochs.", low=1, high=MAX_EPOCHS)]
SubsetOpt = Annotated[
    int | None, number("--subset", help="Class-balanced training subset (images; default: all).", low=1, high=MAX_COUNT)
]
TestSubsetOpt = Annotated[
    int | None,
    number("--test-subset", help="Class-balanced test subset (images; default: all).", low=1, high=MAX_COUNT),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data", help="Dataset folder (default: $EDGENAS_DATA); 'sample' = the CIFAR-10 sample shipped inside."
    ),
]
DatasetKindOpt = Annotated[
    str, choice("--dataset", values=("auto", "cifar10", "imagefolder"), help="Dataset format of --data.")
]

ToleranceOpt = Annotated[
    float,
    number(
        "--tolerance",
        help="Accepted relative miss of the measured latency vs the target.",
        low=0,
        high=1,
        low_open=True,
    ),
]
MaxErrorOpt = Annotated[
    float,
    number(
        "--max-error", help="Largest accepted relative error of the result vs PyTorch.", low=0, high=1, low_open=True
    ),
]
#: The TorchScript ONNX exporter (the one ``edgenas.export`` uses) writes opsets 9..20 in torch 2.4 to 2.14.
MAX_OPSET = 20
OpsetOpt = Annotated[int, number("--opset", help="ONNX opset version.", low=9, high=MAX_OPSET)]
PlotOpt = Annotated[Path | None, output_file("--plot", help="Also write a PNG plot here.")]
NoiseBandOpt = Annotated[
    float, number("--noise-band", help="Smallest relative latency band counted as noise.", high=1, low_open=True)
]

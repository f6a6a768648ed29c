"""``edgenas predictor fit|eval|compare``: latency/energy predictors with their scores (``adapt``, ``lut``:
:mod:`edgenas.cli.predictors_device`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgenas.cli._app import emit_json, out, parse_options, sub_app
from edgenas.cli._options import (
    MAX_BATCH,
    MAX_COUNT,
    MAX_EPOCHS,
    JsonOpt,
    MetricOpt,
    PlotOpt,
    SeedOpt,
    SetOpt,
    choice,
    input_file,
    number,
    output_file,
)
from edgenas.errors import StoreError
from edgenas.predictors.base import NETWORK_KINDS
from edgenas.predictors.fit import KINDS
from edgenas.spaces import get_space

predictor_app = sub_app("predictor", "Fit, evaluate and compare latency/energy predictors.")

StoreOpt = Annotated[Path | None, input_file("--store", help="Measurement store (with --store-device).")]
StoreDeviceFilter = Annotated[
    str | None,
    typer.Option("--store-device", help="Device in the store; with --table, the rows of this 'device' (store export)."),
]
TableOpt = Annotated[
    Path | None, input_file("--table", help="CSV table (with --space, --arch-column, --value-column).")
]
SpaceNameOpt = Annotated[str | None, typer.Option("--space", "-s", help="Space of the table's arch strings.")]
ArchColOpt = Annotated[str | None, typer.Option("--arch-column", help="CSV column with arch strings.")]
ValueColOpt = Annotated[str | None, typer.Option("--value-column", help="CSV column with the values.")]
RuntimeFilter = Annotated[str | None, typer.Option("--runtime", "-r", help="Store rows of this runtime only.")]
InputBatchFilter = Annotated[
    int | None, number("--input-batch", help="Store rows of this input batch only.", low=1, high=MAX_BATCH)
]
TrainSizeOpt = Annotated[
    float,
    number("--train-size", help="Training rows: a count, or a fraction when < 1.", high=MAX_COUNT, low_open=True),
]
EpochsOpt = Annotated[
    int, number("--epochs", help="Maximum epochs (early stopping on validation).", low=1, high=MAX_EPOCHS)
]
KindOpt = Annotated[str, choice("--kind", values=NETWORK_KINDS, help="Predictor model.")]


def load_arch_table(
    store: Path | None,
    device: str | None,
    table: Path | None,
    space: str | None,
    arch_column: str | None,
    value_column: str | None,
    metric: str,
    runtime: str | None,
    batch: int | None,
    options: dict[str, Any],
    default_space: str | None = None,
) -> Any:
    from edgenas.predictors import table_from_csv, table_from_store

    space_name = space or default_space
    if (store is None) == (table is None):
        raise StoreError(
            "give exactly one data source: --store S --store-device D, or --table CSV --space ... --value-column C"
        )
    if space_name is None:
        raise StoreError("--space is needed to read architectures")
    resolved = get_space(space_name, **options)
    if table is not None:
        if arch_column is None or value_column is None:
            raise StoreError("--table needs --arch-column and --value-column")
        # a store export holds several devices: --device keeps one (the CSV's "device" column)
        return table_from_csv(
            table, resolved, arch_column, value_column, metric, where={"device": device} if device is not None else None
        )
    if device is None:
        raise StoreError("--store needs --store-device")
    return table_from_store(store, device, resolved, metric=metric, runtime=runtime, batch=batch)


@predictor_app.command("fit")
def predictor_fit(
    output: Annotated[Path, output_file("--output", "-o", help="Predictor file to write (.pt).")],
    kind: KindOpt = "mlp",
    store: StoreOpt = None,
    store_device: StoreDeviceFilter = None,
    table: TableOpt = None,
    space: SpaceNameOpt = None,
    set_: SetOpt = None,
    arch_column: ArchColOpt = None,
    value_column: ValueColOpt = None,
    metric: MetricOpt = "latency_ms",
    runtime: RuntimeFilter = None,
    input_batch: InputBatchFilter = None,
    train_size: TrainSizeOpt = 0.8,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """Fit a predictor on a training split and report its scores on the held-out rows."""
    from edgenas.predictors import FitConfig, fit_predictor, scores

    data = load_arch_table(
        store, store_device, table, space, arch_column, value_column, metric, runtime, input_batch, parse_options(set_)
    )
    train, test = data.split(train_size, seed=seed)
    predictor = fit_predictor(kind, train, FitConfig(epochs=epochs, seed=seed))
    result = scores(predictor.predict(test.specs), test.values)
    predictor.meta.scores["test"] = result
    predictor.save(output)
    payload = {
        "output": str(output),
        "kind": kind,
        "store_device": data.device,
        "train": len(train),
        "test": len(test),
        "skipped": data.skipped,
        "scores": result,
    }
    if as_json:
        emit_json(payload)
        return
    skipped = ", ".join(f"{v} {k}" for k, v in data.skipped.items() if v)
    out.print(
        f"{kind} predictor for {data.device} ({data.metric}) fitted on {len(train)} archs"
        + (f" (skipped {skipped})" if skipped else "")
        + f"; on {len(test)} held-out archs: RMSE "
        f"{result['rmse']:.4g}, MAPE {result['mape']:.2f}%, Spearman {result['spearman']:.4f}, Kendall "
        f"{result['kendall_tau']:.4f}, within 10% {result['within_10']:.1f}% -> {output}"
    )


@predictor_app.command("eval")
def predictor_eval(
    path: Annotated[Path, typer.Argument(help="Predictor file.", exists=True, dir_okay=False)],
    store: StoreOpt = None,
    store_device: StoreDeviceFilter = None,
    table: TableOpt = None,
    arch_column: ArchColOpt = None,
    value_column: ValueColOpt = None,
    runtime: RuntimeFilter = None,
    input_batch: InputBatchFilter = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a saved predictor on a data source (every row of it)."""
    from edgenas.predictors import Predictor, scores

    predictor = Predictor.load(path)
    m = predictor.meta
    data = load_arch_table(
        store,
        store_device,
        table,
        None,
        arch_column,
        value_column,
        m.metric,
        runtime,
        input_batch,
        m.space_options,
        default_space=m.space,
    )
    result = scores(predictor.predict(data.specs), data.values)
    if as_json:
        emit_json({"predictor": str(path), "kind": m.kind, "data": data.device, "scores": result})
        return
    out.print(
        f"{m.kind} predictor on {len(data)} archs of {data.device}: RMSE {result['rmse']:.4g} {m.unit}, MAE "
        f"{result['mae']:.4g}, MAPE {result['mape']:.2f}%, Spearman {result['spearman']:.4f}, Kendall "
        f"{result['kendall_tau']:.4f}, within 5%/10% {result['within_5']:.1f}%/{result['within_10']:.1f}%"
    )


@predictor_app.command("compare")
def predictor_compare(
    kinds: Annotated[str, typer.Option("--kinds", help=f"Comma-separated kinds of: {', '.join(KINDS)}.")] = (
        "lut,mlp,gcn,gnn,svr,rf,gbr"
    ),
    store: StoreOpt = None,
    store_device: StoreDeviceFilter = None,
    table: TableOpt = None,
    space: SpaceNameOpt = None,
    set_: SetOpt = None,
    arch_column: ArchColOpt = None,
    value_column: ValueColOpt = None,
    metric: MetricOpt = "latency_ms",
    runtime: RuntimeFilter = None,
    input_batch: InputBatchFilter = None,
    train_size: TrainSizeOpt = 0.8,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 200,
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit several kinds on the same split and print one table of their scores on the held-out rows."""
    from edgenas.predictors import SKLEARN_KINDS, FitConfig, fit_predictor, fit_sklearn, scores

    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise StoreError(f"--kinds: unknown kind(s) {', '.join(unknown) or '(none given)'}; kinds: {', '.join(KINDS)}")
    data = load_arch_table(
        store, store_device, table, space, arch_column, value_column, metric, runtime, input_batch, parse_options(set_)
    )
    train, test = data.split(train_size, seed=seed)
    rows, predictions = [], {}
    for kind in wanted:
        if kind in SKLEARN_KINDS:
            pred = fit_sklearn(kind, train, seed=seed).predict_values(test.specs)
        else:
            pred = fit_predictor(kind, train, FitConfig(epochs=epochs, seed=seed)).predict(test.specs)
        predictions[kind] = pred
        rows.append({"kind": kind, **scores(pred, test.values)})
    if plot is not None:
        from edgenas._io import write_bytes_atomic
        from edgenas.report.figures import predictors_compared

        write_bytes_atomic(plot, predictors_compared(test.values, predictions, f"{data.device} ({data.metric})"))
    if as_json:
        emit_json({"store_device": data.device, "metric": metric, "train": len(train), "test": len(test), "rows": rows})
        return
    t = Table("kind", "RMSE", "MAE", "MAPE %", "Kendall tau", "Spearman", "within 5%", "within 10%")
    for r in rows:
        t.add_row(
            r["kind"],
            f"{r['rmse']:.4g}",
            f"{r['mae']:.4g}",
            f"{r['mape']:.2f}",
            f"{r['kendall_tau']:.4f}",
            f"{r['spearman']:.4f}",
            f"{r['within_5']:.1f}",
            f"{r['within_10']:.1f}",
        )
    out.print(f"{data.device} ({data.metric}): trained on {len(train)}, scored on {len(test)} held-out archs")
    out.print(t)

"""``edgenas predictor fit|eval|compare``: latency/energy predictors with their scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from edgenas.cli._app import JsonOpt, SetOpt, app, emit_json, out, parse_options
from edgenas.errors import MeasurementError, StoreError
from edgenas.spaces import get_space

predictor_app = typer.Typer(help="Fit, evaluate and compare latency/energy predictors.", no_args_is_help=True)
app.add_typer(predictor_app, name="predictor")

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Measurement store (with --device).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="Device name in the store.")]
TableOpt = Annotated[Path | None, typer.Option("--table", help="CSV table (with --space/--arch-column/--target).")]
SpaceNameOpt = Annotated[str | None, typer.Option("--space", "-s", help="Space of the table's archs.")]
ArchColOpt = Annotated[str | None, typer.Option("--arch-column", help="CSV column with arch strings.")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="CSV column with the values.")]
MetricOpt = Annotated[str, typer.Option("--metric", help="latency_ms or energy_mJ.")]
RuntimeFilter = Annotated[str | None, typer.Option("--runtime", help="Store rows of this runtime only.")]
BatchFilter = Annotated[int | None, typer.Option("--batch", help="Store rows of this batch size only.")]
TrainSizeOpt = Annotated[float, typer.Option("--train-size", help="Training rows (count, or a fraction < 1).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split and the training.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Maximum epochs (early stopping on validation).")]


def _load_table(
    store: Path | None,
    device: str | None,
    table: Path | None,
    space: str | None,
    arch_column: str | None,
    target: str | None,
    metric: str,
    runtime: str | None,
    batch: int | None,
    options: dict[str, Any],
    default_space: str | None = None,
) -> Any:
    from edgenas.predictors import table_from_csv, table_from_store

    space_name = space or default_space
    if (store is None) == (table is None):
        raise StoreError("give exactly one data source: --store S --device D, or --table CSV --space ... --target")
    if space_name is None:
        raise StoreError("--space is needed to read architectures")
    resolved = get_space(space_name, **options)
    if table is not None:
        if arch_column is None or target is None:
            raise StoreError("--table needs --arch-column and --target")
        # a store export holds several devices: --device keeps one (the CSV's "device" column)
        return table_from_csv(
            table, resolved, arch_column, target, metric, where={"device": device} if device is not None else None
        )
    if device is None:
        raise StoreError("--store needs --device")
    return table_from_store(store, device, resolved, metric=metric, runtime=runtime, batch=batch)


@predictor_app.command("fit")
def predictor_fit(
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictor file to write (.pt).")],
    kind: Annotated[str, typer.Option("--kind", help="mlp, gnn, gcn or lut.")] = "mlp",
    store: StoreOpt = None,
    device: DeviceOpt = None,
    table: TableOpt = None,
    space: SpaceNameOpt = None,
    set_: SetOpt = None,
    arch_column: ArchColOpt = None,
    target: TargetOpt = None,
    metric: MetricOpt = "latency_ms",
    runtime: RuntimeFilter = None,
    batch: BatchFilter = None,
    train_size: TrainSizeOpt = 0.8,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """Fit a predictor on a training split and report its scores on the held-out rows."""
    from edgenas.predictors import FitConfig, fit_predictor, scores

    data = _load_table(store, device, table, space, arch_column, target, metric, runtime, batch, parse_options(set_))
    train, test = data.split(train_size, seed=seed)
    predictor = fit_predictor(kind, train, FitConfig(epochs=epochs, seed=seed))
    result = scores(predictor.predict(test.specs), test.values)
    predictor.meta.scores["test"] = result
    predictor.save(output)
    payload = {
        "output": str(output),
        "kind": kind,
        "device": data.device,
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
    path: Annotated[Path, typer.Argument(help="Predictor file.")],
    store: StoreOpt = None,
    device: DeviceOpt = None,
    table: TableOpt = None,
    arch_column: ArchColOpt = None,
    target: TargetOpt = None,
    runtime: RuntimeFilter = None,
    batch: BatchFilter = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a saved predictor on a data source (every row of it)."""
    from edgenas.predictors import Predictor, scores

    predictor = Predictor.load(path)
    m = predictor.meta
    data = _load_table(
        store,
        device,
        table,
        None,
        arch_column,
        target,
        m.metric,
        runtime,
        batch,
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
    kinds: Annotated[str, typer.Option("--kinds", help="Comma-separated kinds.")] = "lut,mlp,gcn,gnn,svr,rf,gbr",
    store: StoreOpt = None,
    device: DeviceOpt = None,
    table: TableOpt = None,
    space: SpaceNameOpt = None,
    set_: SetOpt = None,
    arch_column: ArchColOpt = None,
    target: TargetOpt = None,
    metric: MetricOpt = "latency_ms",
    runtime: RuntimeFilter = None,
    batch: BatchFilter = None,
    train_size: TrainSizeOpt = 0.8,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 200,
    plot: Annotated[Path | None, typer.Option("--plot", help="Scatter plot of predicted vs measured (PNG).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit several kinds on the same split and print one table of their scores on the held-out rows."""
    from edgenas.predictors import KINDS, SKLEARN_KINDS, FitConfig, fit_predictor, fit_sklearn, scores

    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise MeasurementError(f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    data = _load_table(store, device, table, space, arch_column, target, metric, runtime, batch, parse_options(set_))
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
        _scatter(plot, test.values, predictions, f"{data.device} ({data.metric})")
    if as_json:
        emit_json({"device": data.device, "metric": metric, "train": len(train), "test": len(test), "rows": rows})
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


def _scatter(path: Path, measured: Any, predictions: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgenas._io import atomic_output

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for kind, pred in predictions.items():
        ax.scatter(measured, pred, s=6, alpha=0.5, label=kind)
    lo, hi = float(min(measured)), float(max(measured))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend(markerscale=3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


@predictor_app.command("adapt")
def predictor_adapt(
    path: Annotated[Path, typer.Argument(help="Pre-trained predictor file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Adapted predictor file to write.")],
    shots: Annotated[int, typer.Option("--shots", min=2, help="Measured archs of the new device to adapt on.")] = 20,
    store: StoreOpt = None,
    device: DeviceOpt = None,
    table: TableOpt = None,
    arch_column: ArchColOpt = None,
    target: TargetOpt = None,
    runtime: RuntimeFilter = None,
    batch: BatchFilter = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Fine-tuning steps.")] = 300,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Few-shot transfer: adapt a predictor to a new device from --shots of its measurements; scores on the rest."""
    from edgenas.predictors import Predictor, adapt_predictor, scores

    predictor = Predictor.load(path)
    m = predictor.meta
    data = _load_table(
        store,
        device,
        table,
        None,
        arch_column,
        target,
        m.metric,
        runtime,
        batch,
        m.space_options,
        default_space=m.space,
    )
    few, rest = data.split(shots, seed=seed)
    before = scores(predictor.predict(rest.specs), rest.values)
    adapted = adapt_predictor(predictor, few, steps=steps, seed=seed)
    after = scores(adapted.predict(rest.specs), rest.values)
    adapted.meta.scores = {"test": after, "before_adaptation": before}
    adapted.save(output)
    if as_json:
        emit_json({"output": str(output), "shots": shots, "test": len(rest), "before": before, "after": after})
        return
    out.print(
        f"adapted {m.kind} from {m.device} to {data.device} with {shots} shots: on {len(rest)} other archs "
        f"Spearman {before['spearman']:.4f} -> {after['spearman']:.4f}, MAPE {before['mape']:.1f}% -> "
        f"{after['mape']:.1f}% -> {output}"
    )


@predictor_app.command("lut")
def predictor_lut(
    space: Annotated[str, typer.Argument(help="Layer-wise space (mbv2, mbv2-cifar, fbnet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictor file to write.")],
    store: Annotated[Path, typer.Option("--store", help="Store with whole-network measurements (for the constant).")],
    device: Annotated[str, typer.Option("--device", help="Device name in the store.")],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="Runtime to time the ops with.")] = "ort-cpu",
    set_: SetOpt = None,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 1,
    threads: Annotated[int, typer.Option("--threads", min=0)] = 1,
    warmup: Annotated[int, typer.Option("--warmup", min=0)] = 5,
    repeats: Annotated[int, typer.Option("--repeats", min=3)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The classic LUT: time every op of every layer alone on RUNTIME; the constant comes from measured networks."""
    from edgenas.hardware import Protocol, RuntimeOptions, get_runtime
    from edgenas.predictors import scores, table_from_store
    from edgenas.predictors.lut import lut_predictor, measure_op_table

    resolved = get_space(space, **parse_options(set_))
    whole = table_from_store(store, device, resolved, runtime=runtime, batch=batch, threads=threads)
    rt = get_runtime(runtime, RuntimeOptions(batch=batch, resolution=resolved.resolution, threads=threads))
    table = measure_op_table(resolved, rt, Protocol(warmup=warmup, repeats=repeats))
    predictor = lut_predictor(resolved, table, whole, device)
    result = scores(predictor.predict(whole.specs), whole.values)
    predictor.meta.scores = {"store": result}
    predictor.save(output)
    if as_json:
        emit_json(
            {
                "output": str(output),
                "ops_timed": int((~np.isnan(table)).sum()),
                "archs": len(whole),
                "scores": result,
                "constant_ms": float(predictor.net.constant.detach()),
            }
        )
        return
    out.print(
        f"LUT of {int((~np.isnan(table)).sum())} ops timed alone with {runtime}; constant "
        f"{float(predictor.net.constant.detach()):.3f} ms from {len(whole)} measured archs; on them: RMSE "
        f"{result['rmse']:.4g} ms, Spearman {result['spearman']:.4f} -> {output}"
    )

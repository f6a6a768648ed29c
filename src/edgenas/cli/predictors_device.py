"""``edgenas predictor adapt|lut``: a predictor for a new device from few measurements (transfer learning, or a table
of per-op costs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edgenas.cli._app import emit_json, out, parse_options
from edgenas.cli._device import device_runtime, opened_device
from edgenas.cli._options import (
    MAX_COUNT,
    InputBatchOpt,
    JsonOpt,
    RemoteOpt,
    RepeatsOpt,
    RuntimeOpt,
    SeedOpt,
    SetOpt,
    SpaceArg,
    StoreDeviceOpt,
    ThreadsOpt,
    WarmupRunsOpt,
    input_file,
    number,
    output_file,
)
from edgenas.cli.predictors import (
    ArchColOpt,
    InputBatchFilter,
    RuntimeFilter,
    StoreDeviceFilter,
    StoreOpt,
    TableOpt,
    ValueColOpt,
    load_arch_table,
    predictor_app,
)
from edgenas.spaces import get_space


@predictor_app.command("adapt")
def predictor_adapt(
    path: Annotated[Path, typer.Argument(help="Pre-trained predictor file.", exists=True, dir_okay=False)],
    output: Annotated[Path, output_file("--output", "-o", help="Adapted predictor file to write.")],
    shots: Annotated[
        int, number("--shots", help="Measured archs of the new device to adapt on.", low=2, high=MAX_COUNT)
    ] = 20,
    store: StoreOpt = None,
    store_device: StoreDeviceFilter = None,
    table: TableOpt = None,
    arch_column: ArchColOpt = None,
    value_column: ValueColOpt = None,
    runtime: RuntimeFilter = None,
    input_batch: InputBatchFilter = None,
    steps: Annotated[int, number("--steps", help="Fine-tuning steps.", low=1, high=MAX_COUNT)] = 300,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Few-shot transfer: adapt a predictor to a new device from --shots of its measurements; scores on the rest."""
    from edgenas.predictors import Predictor, adapt_predictor, scores

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
    space: SpaceArg,
    output: Annotated[Path, output_file("--output", "-o", help="Predictor file to write.")],
    store: Annotated[Path, input_file("--store", help="Store with whole-network measurements (for the constant).")],
    store_device: StoreDeviceOpt,
    runtime: RuntimeOpt = "ort-cpu",
    remote: RemoteOpt = None,
    set_: SetOpt = None,
    input_batch: InputBatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupRunsOpt = 5,
    repeats: RepeatsOpt = 20,
    as_json: JsonOpt = False,
) -> None:
    """The classic LUT: time every op of every layer alone on RUNTIME; the constant comes from measured networks."""
    from edgenas.hardware import Protocol
    from edgenas.predictors import scores, table_from_store
    from edgenas.predictors.lut import lut_predictor, measure_op_table

    runtime = device_runtime(runtime, remote) or runtime
    resolved = get_space(space, **parse_options(set_))
    whole = table_from_store(store, store_device, resolved, runtime=runtime, batch=input_batch, threads=threads)
    timing = {"batch": input_batch, "resolution": resolved.resolution, "threads": threads}
    with opened_device(runtime, remote, protocol=Protocol(warmup=warmup, repeats=repeats), **timing) as device:
        table = measure_op_table(resolved, device)
    predictor = lut_predictor(resolved, table, whole, store_device)
    result = scores(predictor.predict(whole.specs), whole.values)
    predictor.meta.scores = {"store": result}
    predictor.save(output)
    timed, constant = int((~np.isnan(table)).sum()), float(predictor.net.constant.detach())
    if as_json:
        emit_json(
            {"output": str(output), "ops_timed": timed, "archs": len(whole), "scores": result, "constant_ms": constant}
        )
        return
    out.print(
        f"LUT of {timed} ops timed alone with {runtime}; constant {constant:.3f} ms from {len(whole)} measured archs; "
        f"on them: RMSE {result['rmse']:.4g} ms, Spearman {result['spearman']:.4f} -> {output}"
    )

"""Search on NAS-Bench-201 and let the tables judge: any supernet strategy, several seeds, true accuracy and latency.

Protocol (Dong & Yang, ICLR 2020, "cifar10-valid"), shrunk to a CPU budget and said so: the search sees a
class-balanced subset of the 50k CIFAR-10 training images, split half/half into the weight half and the
architecture half (the benchmark splits all 50k 25k/25k); weights by SGD 0.025, momentum 0.9, weight decay 5e-4;
alpha by Adam (betas 0.5/0.999, weight decay 1e-3); GDAS' temperature 10 -> 0.1. The benchmark's 50 DARTS epochs
give alpha about 19,500 Adam steps at 3e-4 (GDAS: 250 epochs, five times as many); a CPU search of a few minutes
gives it a few hundred, so the default alpha learning rate keeps the product (steps x lr) of DARTS' protocol
(``alpha_budget="gdas"``: GDAS'), up to 0.05 (:func:`protocol_alpha_lr`; ``alpha_lr`` overrides it).

The loop (:data:`SEARCH_LOOP`) is NNI 3.0's DARTS loop, which found 92.4 on this budget while our former loop
found cells no better than random: an architecture step and a weight step on every batch (DARTS' Algorithm 1),
constant learning rates, no weights-only warm-up, plain momentum, alpha at 1e-3·N(0,1), PyTorch's default
initialisation; the search cells' BatchNorm is affine-free as in NAS-Bench-201's own search cells and DrNAS.
``benchmarks/nb201_parity.py`` measured it factor by factor (``benchmarks/results/nb201_parity.md``). These are
the referee's defaults only: the engine's (``SearchConfig``) stay the thesis' layer-wise settings until the same
comparison is made on the layer-wise space.

The searched network is shallower than the tables' by default: one cell per stage instead of five (DARTS likewise
searches 8 cells for a 20-cell network), since a CPU budget trains the 5-cell supernet too little for its
cross-entropy to rank the ops. The derived cell's true 200-epoch accuracy and, with a target, its true latency on
the HW-NAS-Bench column come from the tables (:mod:`edgenas.bench.nb201`), with the oracle, the regret and the rank
among cells of its latency.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgenas.bench.nb201 import NB201Table, judge, oracle
from edgenas.errors import BenchError
from edgenas.rundir import read_config
from edgenas.spaces import get_space, load_specs
from edgenas.train.data import ImageData

#: NAS-Bench-201's search budget for alpha: epochs of 25,000 / 64 batches, Adam at 3e-4. DARTS searches 50 epochs,
#: GDAS 250 (its single path trains each op on a fifth of the steps).
PROTOCOL_BATCHES_PER_EPOCH = 25_000 // 64
PROTOCOL_SEARCH_EPOCHS = {"darts": 50, "gdas": 250}
PROTOCOL_ALPHA_STEPS = PROTOCOL_SEARCH_EPOCHS["darts"] * PROTOCOL_BATCHES_PER_EPOCH
PROTOCOL_ALPHA_LR = 3e-4
#: Ceiling of the scaled alpha lr: Adam moves each logit by about lr per step, so a few hundred steps at 0.05 can
#: still commit alpha while a tiny budget does not get an lr that jumps it in one step.
MAX_SCALED_ALPHA_LR = 0.05
#: Cells per stage of the benchmark's network (and of the protocol's search).
PROTOCOL_CELLS_PER_STAGE = 5
#: Cells per stage of the network a CPU search trains (the module docstring's table).
SEARCH_CELLS_PER_STAGE = 1
#: The search loop every strategy runs on this benchmark by default: the ``nb201`` space's measured loop
#: (:attr:`~edgenas.spaces.nb201.NB201Space.search_loop`: NNI 3.0's DARTS loop with affine-free BatchNorm in the
#: search cells), less its warm-up, which the :class:`Budget` states.
SEARCH_LOOP: dict[str, Any] = {k: v for k, v in get_space("nb201").search_loop.items() if k != "warmup_epochs"}


@dataclass(frozen=True)
class Budget:
    """How much of the protocol a CPU affords (the same for every strategy of a comparison).

    Attributes:
        subset: class-balanced training images searched on (split half/half; the protocol: all 50,000).
        epochs / warmup_epochs: epochs, of which the first train the weights only (protocol: 50, 0).
        batch_size: images per step of either phase (protocol: 64).
        cells_per_stage: cells per stage of the network the search trains (protocol: 5, the tables' network; the
            default 1 is a shallower proxy that learns faster on a CPU; the found cell is always judged in the
            tables').
    """

    subset: int = 5_000
    epochs: int = 6
    warmup_epochs: int = 0
    batch_size: int = 64
    cells_per_stage: int = SEARCH_CELLS_PER_STAGE

    def alpha_steps(self) -> int:
        return max(1, (self.subset // 2) // self.batch_size * (self.epochs - self.warmup_epochs))


def protocol_alpha_lr(budget: Budget, protocol: str = "darts") -> float:
    """Adam lr of alpha that keeps a protocol's steps x lr within this budget's steps (at least the protocol's, at
    most :data:`MAX_SCALED_ALPHA_LR`): DARTS' 50 epochs (the default, for every strategy) or GDAS' 250.

    Raises:
        BenchError: an unknown protocol.
    """
    if protocol not in PROTOCOL_SEARCH_EPOCHS:
        raise BenchError(f"alpha budget must be one of {', '.join(PROTOCOL_SEARCH_EPOCHS)}, got {protocol!r}")
    protocol_steps = PROTOCOL_SEARCH_EPOCHS[protocol] * PROTOCOL_BATCHES_PER_EPOCH
    scaled = PROTOCOL_ALPHA_LR * protocol_steps / budget.alpha_steps()
    return min(MAX_SCALED_ALPHA_LR, max(PROTOCOL_ALPHA_LR, scaled))


def search_config(
    strategy: str,
    seed: int,
    budget: Budget,
    *,
    alpha_lr: float | None = None,
    alpha_budget: str = "darts",
    **overrides: Any,
) -> Any:
    """The :class:`~edgenas.search.engine.SearchConfig` of one NAS-Bench-201 search (protocol settings, budget, the
    loop of :data:`SEARCH_LOOP`; alpha's lr ``alpha_lr``, or the one keeping the steps x lr of the ``alpha_budget``
    protocol; the strategy's own settings, e.g. SurgeNAS' identity mapping and temperature, on top; ``overrides``
    last)."""
    from edgenas.search import get_strategy
    from edgenas.search.engine import SearchConfig

    config = SearchConfig.for_space(
        get_space("nb201"),
        method=strategy,
        epochs=budget.epochs,
        warmup_epochs=budget.warmup_epochs,
        batch_size=budget.batch_size,
        train_subset=budget.subset,
        val_fraction=0.5,
        w_lr=0.025,
        w_momentum=0.9,
        w_weight_decay=5e-4,
        alpha_lr=alpha_lr if alpha_lr is not None else protocol_alpha_lr(budget, alpha_budget),
        alpha_weight_decay=1e-3,
        tau_start=10.0,
        tau_end=0.1,
        seed=seed,
        device="cpu",
        supernet_options=(
            {} if budget.cells_per_stage == PROTOCOL_CELLS_PER_STAGE else {"cells_per_stage": budget.cells_per_stage}
        ),
    )
    return replace(config, **(dict(get_strategy(strategy).method_settings) | overrides))


@dataclass(frozen=True)
class Budgeted:
    """A latency budget judged on a HW-NAS-Bench column: the predictor the search uses and the table's truth."""

    target: Any  # edgenas.search.engine.Target
    column: str
    tolerance: float = 0.02
    constraint: str = "eq"


def search_and_judge(
    table: NB201Table,
    strategy: str,
    seed: int,
    data: ImageData,
    budget: Budget,
    run: Path,
    *,
    latency: Budgeted | None = None,
    options: dict[str, Any] | None = None,
    land: int = 0,
) -> dict[str, Any]:
    """One search in the ``nb201`` space, then the tables' verdict on the derived cell (one record). A finished run
    in ``run`` (its ``summary.json`` written) is judged again without searching, so a killed benchmark continues.
    ``options``: :func:`search_config`'s (``alpha_lr``, ``alpha_budget``) and further
    :class:`~edgenas.search.engine.SearchConfig` fields (e.g. ``fair_warmup``, ``accuracy``, ``alternate``: the
    strategy's own default with ``""``, the loop's of :data:`SEARCH_LOOP` when absent). ``land``: with a latency
    target, land the derived cell on T by the closed loop first, the tables standing for the device
    (:func:`land_by_table`, at most ``land`` measurements; 0: judge the derived cell as it is)."""
    from edgenas.search import get_strategy

    space = get_space("nb201")
    overrides = dict(options or {})
    if latency is not None:
        overrides["constraint"] = latency.constraint
    config = search_config(strategy, seed, budget, **overrides)
    summary_path = run / "summary.json"
    _check_same_search(run, config)
    if summary_path.is_file() and (run / "arch.json").is_file():
        summary = json.loads(summary_path.read_text())
        arch, seconds = load_specs(run / "arch.json")[0], float(summary.get("wall_s_this_session", 0.0))
    else:
        start = time.perf_counter()
        arch, summary = get_strategy(strategy).run(space, [latency.target] if latency else [], data, config, run)
        seconds = time.perf_counter() - start
    landing = None
    if latency is not None and land > 0:
        searched = table.index_of(arch)
        arch, landing = land_by_table(table, latency, run, arch, land)
        landing["searched_cell"] = searched
    record: dict[str, Any] = {
        "strategy": strategy,
        "seed": seed,
        "search_s": round(seconds, 1),
        **table.lookup(arch),
    }
    if landing is not None:
        record["landing"] = landing
    if latency is not None:
        best = oracle(
            table, latency.column, latency.target.value, tolerance=latency.tolerance, constraint=latency.constraint
        )
        verdict = judge(table, arch, best)
        predicted = summary["targets"][0]["predicted"]
        if landing is not None:  # the landed cell's own prediction (the summary's is the searched cell's)
            predicted = float(latency.target.predictor.predict([arch])[0])
        record.update(
            predicted_ms=predicted,
            target_ms=latency.target.value,
            true_latency_ms=verdict["true_latency_ms"],
            latency_error=verdict["latency_error"],
            meets_budget=verdict["meets_budget"],
            regret=verdict["regret"],
            rank=verdict["rank"],
            peers=verdict["peers"],
            oracle=best.as_dict(),
        )
    return record


def land_by_table(
    table: NB201Table, latency: Budgeted, run: Path, arch: Any, budget: int
) -> tuple[Any, dict[str, Any]]:
    """The product's closed loop (:func:`edgenas.search.closed_loop.close_loop`) from the searched cell ``arch``
    and the search's alpha, its "device" the HW-NAS-Bench column (the true latency: exact, no drift) and its
    predictor the target's; returns the chosen cell and a record (measurements spent, within the tolerance)."""
    from edgenas.hardware.device import SimulatedDevice, latency_fn
    from edgenas.search.closed_loop import close_loop, searched_alpha

    column = table.latency[table.column(latency.column)]
    device = SimulatedDevice(lambda spec: float(column[table.index_of(spec)]), name=f"HW-NAS-Bench {latency.column}")
    target = latency.target
    loop = close_loop(
        arch,
        searched_alpha(run),
        target.predictor,
        target.value,
        latency_fn(device),
        tolerance=latency.tolerance,
        budget=budget,
    )
    return loop.chosen, {"measurements": len(loop.measurements), "within_tolerance": loop.within_tolerance}


def _check_same_search(run: Path, config: Any) -> None:
    """Refuse a run directory that holds a search with other options (a finished one would be judged as this one).

    Raises:
        BenchError: ``run/config.json`` records other search options.
    """
    from edgenas.search.engine import same_config

    record = read_config(run)
    if record and not same_config(record.get("config"), config):
        raise BenchError(f"{run} holds a search with other options (its config.json); use another output directory")


def _mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of the figures that have them (test/valid accuracy, regret, latency error, time)."""
    if not records:
        raise BenchError("no search records to aggregate")
    keys = ("test_acc", "valid_acc", "search_s", "regret", "latency_error")
    out = {k: _mean_std([float(r[k]) for r in records]) for k in keys if all(k in r for r in records)}
    if all("meets_budget" in r for r in records):
        out["meets_budget"] = sum(bool(r["meets_budget"]) for r in records)
    out["cells"] = [int(r["index"]) for r in records]
    return out


def markdown_row(label: str, summary: dict[str, Any]) -> str:
    """One table row: label, test accuracy, regret, true latency miss, cells (mean ± std over seeds)."""

    def fmt(key: str, scale: float = 1.0, digits: int = 2) -> str:
        if key not in summary:
            return "—"
        m, s = summary[key]["mean"] * scale, summary[key]["std"] * scale
        return f"{m:.{digits}f} ± {s:.{digits}f}" if not math.isnan(s) else f"{m:.{digits}f}"

    met = f"{summary['meets_budget']}/{summary['test_acc']['n']}" if "meets_budget" in summary else "—"
    cells = ", ".join(str(c) for c in summary["cells"])
    return (
        f"| {label} | {fmt('test_acc')} | {fmt('regret')} | {fmt('latency_error', 100, 1)} | {met} | "
        f"{fmt('search_s', 1, 0)} | {cells} |"
    )


MARKDOWN_HEADER = (
    "| search | test acc. (%) | regret (points) | true latency miss (%) | within tolerance | search (s) | cells |\n"
    "|---|---|---|---|---|---|---|"
)

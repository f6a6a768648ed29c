"""How well accuracy proxies rank NAS-Bench-201 cells (thesis Fig 4.6/4.7), and how well an evolution driven by each
finds accurate cells under a latency budget (thesis Fig 4.11).

Every cell is probed once (:func:`edgenas.proxies.probe_spec`: ``E`` epochs on the same fixed batches, the
Jacobian score at initialisation and after every epoch) and the trace is kept in a JSON Lines file, so one probe
serves every proxy at every budget ``1..E``, both studies share their probes, and a killed study resumes without
probing a cell twice. The network probed is the cell's NAS-Bench-201 network at the given ``channels`` and
``cells_per_stage`` (5 and 16 are the table's; fewer cells per stage make the CPU study affordable and are stated
with every figure); its ranks are compared with the table's 200-epoch test accuracy of the full network, and with
the 12-epoch file's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sstats

from edgenas.bench.nb201 import NB201Table, load_short_accuracy
from edgenas.errors import BenchError
from edgenas.evolution import EvolutionConfig, evolve
from edgenas.proxies import ProbeSettings, Trace, get_proxy, probe_spec
from edgenas.proxies.evaluate import Batch, proxy_batches
from edgenas.spaces import ArchSpec, SearchSpace, get_space
from edgenas.train.data import ImageData

#: The proxies the studies compare (the thesis' three, plus TSE's last-epoch variant).
STUDY_PROXIES = ("bte", "bte-clamped", "tse", "tse-e", "jacobian")
#: Two-sided bootstrap interval.
INTERVAL = 0.95


@dataclass(frozen=True)
class StudyNetwork:
    """The network each cell is probed as, and the probe seed (the same initialisation seed for every cell)."""

    channels: int = 16
    cells_per_stage: int = 5
    seed: int = 0

    def space(self) -> SearchSpace:
        """The ``nb201`` space of this network."""
        return get_space("nb201", channels=self.channels, cells_per_stage=self.cells_per_stage)


class TraceCache:
    """Probe traces by cell string, read from and appended to a JSON Lines file (``None``: in memory only)."""

    def __init__(
        self,
        path: Path | None,
        batches: Sequence[Batch],
        settings: ProbeSettings,
        network: StudyNetwork,
        on_probe: Callable[[str], None] | None = None,
    ) -> None:
        self.path, self.batches, self.settings, self.network, self.on_probe = path, batches, settings, network, on_probe
        self.traces: dict[str, Trace] = {}
        self.probed = 0
        header = {"settings": asdict(settings), "network": asdict(network), "batches": len(batches)}
        if path is not None and path.is_file():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if lines and lines[0] != {"header": header}:
                raise BenchError(f"{path} was probed with other settings: {lines[0]}; use another output folder")
            self.traces = {row["arch"]: Trace.from_dict(row["trace"]) for row in lines[1:]}
        elif path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"header": header}) + "\n")

    def __call__(self, spec: ArchSpec) -> Trace:
        arch = str(spec)
        if arch not in self.traces:
            trace = probe_spec(spec, self.batches, self.settings, seed=self.network.seed)
            self.traces[arch] = trace
            self.probed += 1
            if self.path is not None:
                with self.path.open("a") as f:
                    f.write(json.dumps({"arch": arch, "trace": trace.as_dict()}) + "\n")
            if self.on_probe is not None:
                self.on_probe(arch)
        return self.traces[arch]


def sample_cells(table: NB201Table, n: int, seed: int) -> list[int]:
    """``n`` distinct benchmark indices drawn uniformly (seeded).

    Raises:
        BenchError: ``n`` outside 2..15625.
    """
    if not 2 <= n <= len(table.arch):
        raise BenchError(f"the study needs 2..{len(table.arch)} cells, got {n}")
    return sorted(np.random.default_rng(seed).choice(len(table.arch), size=n, replace=False).tolist())


def rank_correlations(
    scores: np.ndarray, truth: np.ndarray, *, bootstrap: int, seed: int
) -> dict[str, float | list[float]]:
    """Kendall tau-b and Spearman rho of ``scores`` against ``truth``, each with a percentile bootstrap interval
    over the cells (``bootstrap`` resamples; resamples with a constant side are dropped). A constant side makes
    every figure NaN (a rank correlation is undefined there)."""
    if np.ptp(scores) == 0 or np.ptp(truth) == 0:
        nan = float("nan")
        return {"kendall_tau": nan, "tau_interval": [nan, nan], "spearman": nan, "rho_interval": [nan, nan]}
    tau = float(sstats.kendalltau(scores, truth).statistic)
    rho = float(sstats.spearmanr(scores, truth).statistic)
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    for _ in range(bootstrap):
        pick = rng.integers(len(scores), size=len(scores))
        s, t = scores[pick], truth[pick]
        if np.ptp(s) > 0 and np.ptp(t) > 0:
            taus.append(sstats.kendalltau(s, t).statistic)
            rhos.append(sstats.spearmanr(s, t).statistic)
    tails = [100 * (1 - INTERVAL) / 2, 100 * (1 + INTERVAL) / 2]
    interval = (lambda v: [float(x) for x in np.percentile(v, tails)]) if taus else (lambda v: [float("nan")] * 2)
    return {"kendall_tau": tau, "tau_interval": interval(taus), "spearman": rho, "rho_interval": interval(rhos)}


def rank_study(
    table: NB201Table,
    cells: Sequence[int],
    traces: TraceCache,
    truths: dict[str, np.ndarray],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (proxy, budget, truth): the rank correlations of the proxy's scores of ``cells`` after
    ``budget`` epochs with ``truths[name]`` (arrays over all cells, by index). Probes cells not yet in ``traces``."""
    space = traces.network.space()
    recorded = [traces(space.parse(table.arch[i])) for i in cells]
    epochs = traces.settings.epochs
    rows = []
    for name in STUDY_PROXIES:
        proxy = get_proxy(name)
        for budget in range(max(proxy.min_epochs, 0 if proxy.needs_jacobian else 1), epochs + 1):
            values = np.array([proxy.score(t, budget).value for t in recorded])
            for truth_name, truth in truths.items():
                correlations = rank_correlations(values, truth[list(cells)], bootstrap=bootstrap, seed=seed)
                rows.append({"proxy": name, "epochs": budget, "truth": truth_name, **correlations})
    return rows


def evolution_study(
    table: NB201Table,
    traces: TraceCache,
    *,
    column: str,
    target_ms: float,
    config: EvolutionConfig,
    proxies: Sequence[str] = ("bte", "tse", "jacobian"),
    epochs: int | None = None,
) -> list[dict[str, Any]]:
    """For each proxy, an evolution maximising its score after ``epochs`` (default: the probe's) over cells whose
    true ``column`` latency is at most ``target_ms``; the row holds the true 200-epoch accuracy of the cell it picks
    and how many cells it scored (the same settings give every proxy the same number of evaluations)."""
    space = traces.network.space()
    latency = table.latency[table.column(column)]
    epochs = traces.settings.epochs if epochs is None else epochs

    def index(spec: ArchSpec) -> int:
        return table.index_of(str(spec))

    def feasible(spec: ArchSpec) -> bool:
        return bool(latency[index(spec)] <= target_ms)

    rows = []
    for name in proxies:
        proxy = get_proxy(name)
        budget = 0 if proxy.min_epochs == 0 else epochs

        def fitness(specs: list[ArchSpec], proxy: Any = proxy, budget: int = budget) -> list[float]:
            return [proxy.score(traces(s), budget).value for s in specs]

        result = evolve(space, fitness, feasible, config)
        best = index(result.best.spec)
        rows.append(
            {
                "proxy": name,
                "seed": config.seed,
                "epochs": budget,
                "cell": table.arch[best],
                "test_acc": float(table.test_acc[best]),
                "latency_ms": float(latency[best]),
                "evaluations": len(result.history),
            }
        )
    return rows


def run_rank_study(
    table: NB201Table,
    data: ImageData,
    out_dir: Path,
    *,
    n_archs: int,
    epochs: int,
    images: int,
    batch_size: int,
    network: StudyNetwork,
    bootstrap: int = 1000,
    on_probe: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sample ``n_archs`` cells (seeded by ``network.seed``), probe each for ``epochs`` epochs on ``images``
    class-balanced training images (``out_dir/traces.jsonl``, resumable) and correlate every proxy at every budget
    with the 200-epoch and 12-epoch test accuracies."""
    batches = proxy_batches(data, images, batch_size, seed=network.seed)
    traces = TraceCache(out_dir / "traces.jsonl", batches, ProbeSettings(epochs=epochs), network, on_probe)
    cells = sample_cells(table, n_archs, network.seed)
    truths = {"200ep": table.test_acc, "12ep": load_short_accuracy(table.source)}
    rows = rank_study(table, cells, traces, truths, bootstrap=bootstrap, seed=network.seed)
    seconds = [traces.traces[table.arch[i]].seconds for i in cells if table.arch[i] in traces.traces]
    return {
        "cells": cells,
        "network": asdict(network),
        "images": images,
        "batch_size": batch_size,
        "epochs": epochs,
        "bootstrap": bootstrap,
        "median_probe_s": float(np.median(seconds)) if seconds else None,
        "probed_now": traces.probed,
        "rows": rows,
    }


def rank_markdown(rows: Sequence[dict[str, Any]], truth: str) -> str:
    """A markdown table: one line per proxy, Kendall tau [interval] per budget against ``truth``."""
    budgets = sorted({r["epochs"] for r in rows})
    lines = [
        "| proxy | " + " | ".join(f"tau @ {e} ep" for e in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for name in dict.fromkeys(r["proxy"] for r in rows):
        cells = {r["epochs"]: r for r in rows if r["proxy"] == name and r["truth"] == truth}
        text = [
            f"{cells[e]['kendall_tau']:.3f} [{cells[e]['tau_interval'][0]:.2f}, {cells[e]['tau_interval'][1]:.2f}]"
            if e in cells
            else "-"
            for e in budgets
        ]
        lines.append(f"| {name} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"

"""Channel-level exploration of a found network with BTE (LightNets++, thesis Sec 4.3.5, Algorithm 2, Eq 4.13).

maximise BTE(alpha_c) subject to LAT(alpha_c) <= T (or = T within a tolerance), c in the channel space of the net.

* The channel space (:mod:`edgenas.spaces.channels`) scales each layer's hidden channels by 0.5 ... 2.0.
* LAT is a latency predictor of that space, fitted on measured random channel configurations
  (:func:`fit_channel_predictor`; thesis: 10,000 measured on the device; the count here comes from a
  sample-efficiency measurement, ``benchmarks/channels.py``).
* The search is the generic evolutionary engine (thesis: population 20, 20 iterations, top 10, rates 0.5) with BTE
  after E = 3 epochs on fixed batches as fitness; the unmodified network joins the first population when it meets
  the constraint, and is scored in any case so that the result shows what the search gained over it (Fig 4.9).
* The chosen configuration and the unmodified net are measured on the device when a measurer is given.

Run directory: ``evaluated.jsonl`` (the evolution's record: a killed search resumes without re-probing),
``arch.json`` (the chosen configuration: a spec of the ``channels`` space that ``edgenas train`` accepts),
``summary.json``, ``channels.png`` (fitness vs predicted latency of every candidate) and ``config.json`` (a resumed
search must be asked the same).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgenas import rundir
from edgenas._env import environment
from edgenas._io import write_bytes_atomic, write_text_atomic
from edgenas.errors import SearchError
from edgenas.evolution import Candidate, EvolutionConfig, evolve
from edgenas.predictors.base import CachedPredictor
from edgenas.predictors.fit import fit_on_store
from edgenas.proxies import ProbeSettings, get_proxy, probe_spec, proxy_batches
from edgenas.search.closed_loop import Band
from edgenas.search.landing import LandingPolicy, land_found
from edgenas.spaces import ArchSpec, save_specs
from edgenas.spaces.channels import ChannelSpace, channel_space
from edgenas.train.data import ImageData

CONSTRAINTS = ("le", "eq")
EVALUATED_FILE = "evaluated.jsonl"
SUMMARY_FILE = rundir.SUMMARY_FILE
ARCH_FILE = "arch.json"
PLOT_FILE = "channels.png"
UNMODIFIED_FILE = "unmodified.json"


#: The landing's default: the closed loop, which won the landing head-to-head (``benchmarks/results/landing.md``).
DEFAULT_LANDING = LandingPolicy()
#: Generation recorded for a configuration the evolution never scored and the landing chose.
LANDED_GENERATION = -1


class TargetBelowChannelsError(SearchError):
    """T lies below the predicted latency of the narrowest channel configuration: no refinement can meet it."""


@dataclass(frozen=True)
class ChannelSearchConfig:
    """Settings of Algorithm 2.

    Attributes:
        target_ms: the latency constraint T (ms, as the predictor predicts it).
        constraint: ``le`` (predicted <= T) or ``eq`` (predicted within ``tolerance`` of T, thesis Eq 4.13).
        tolerance: relative band of ``eq``.
        proxy: the fitness (a registered proxy; thesis: ``bte``).
        epochs: training epochs of the proxy's probe (thesis: E = 3).
        images: class-balanced training images the probe trains on (fixed order, no augmentation).
        batch_size: batch size of the probe.
        evolution: population, iterations, top-k, rates and seed (thesis: 20, 20, 10, 0.5, 0.5).
    """

    target_ms: float
    constraint: str = "le"
    tolerance: float = 0.02
    proxy: str = "bte"
    epochs: int = 3
    images: int = 2560
    batch_size: int = 64
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)

    def check(self) -> None:
        """Raise :class:`SearchError` (or the proxy's error) for settings that cannot work."""
        if not self.target_ms > 0 or self.constraint not in CONSTRAINTS or not 0 < self.tolerance < 1:
            raise SearchError("target_ms must be > 0, constraint le or eq, tolerance in (0, 1)")
        if self.epochs < get_proxy(self.proxy).min_epochs:
            raise SearchError(f"proxy {self.proxy} needs at least {get_proxy(self.proxy).min_epochs} epochs")
        self.evolution.check()


def channel_search(
    base: ArchSpec,
    predictor: Any,
    data: ImageData,
    out_dir: str | Path,
    config: ChannelSearchConfig,
    *,
    device: Any = None,
    on_generation: Callable[[int, Candidate], None] | None = None,
    on_probe: Callable[[ArchSpec, float], None] | None = None,
    landing: LandingPolicy = DEFAULT_LANDING,
) -> dict[str, Any]:
    """Run Algorithm 2 on ``base`` (a spec of a staged space) and return the summary (also written to the run
    directory). ``device`` (an :class:`edgenas.hardware.device.Device`), when given, lands the found configuration
    on T by ``landing`` (:func:`edgenas.search.landing.land_found`: the closed loop, changing as few scales as it
    can, within the search's own constraint and tolerance), then measures the landed and the unmodified network
    round-robin (one session: their ratio is the speed-up).

    Raises:
        SearchError: bad settings, a predictor of another space.
        EvolutionError: no channel configuration meets the constraint.
    """
    config.check()
    space, out = channel_space(base), Path(out_dir)
    rundir.check_resume(out, config, SearchError, "channel search")
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_provenance(out, {"config": asdict(config), "base": str(base)}, environment("cpu"))
    latency = CachedPredictor(
        predictor,
        space,
        "channel space of this network",
        SearchError,
        ": fit one with fit_channel_predictor or `edgenas channels` without --predictor",
    )
    proxy = get_proxy(config.proxy)
    batches = proxy_batches(data, config.images, config.batch_size, seed=config.evolution.seed)
    settings = ProbeSettings(epochs=config.epochs, jacobian=proxy.needs_jacobian)

    def fitness(specs: list[ArchSpec]) -> list[float]:
        values = []
        for spec in specs:
            trace = probe_spec(spec, batches, settings, seed=config.evolution.seed)
            values.append(proxy.score(trace, config.epochs if proxy.min_epochs else 0).value)
            if on_probe is not None:
                on_probe(spec, values[-1])
        return values

    def feasible(spec: ArchSpec) -> bool:
        (ms,) = latency([spec])
        if config.constraint == "le":
            return ms <= config.target_ms
        return abs(ms / config.target_ms - 1) <= config.tolerance

    unscaled = space.unscaled
    result = evolve(
        space,
        fitness,
        feasible,
        config.evolution,
        cost=latency,
        initial=_initial(space, feasible, latency, predictor, config),
        record=out / EVALUATED_FILE,
        on_generation=on_generation,
    )
    baseline = _baseline(result.history, unscaled, fitness, latency, out)
    landed = _land(result, latency, config, device, landing, fitness)
    summary = _summary(space, config, result, baseline, device, landed)
    save_specs(out / ARCH_FILE, [landed.candidate.spec])
    rundir.write_summary(out, summary)
    from edgenas.report.figures import evolution_scores

    history = [c.as_dict() for c in result.history]
    write_bytes_atomic(out / PLOT_FILE, evolution_scores(history, config.target_ms, baseline))
    return summary


def _initial(
    space: ChannelSpace,
    feasible: Callable[[ArchSpec], bool],
    latency: CachedPredictor,
    predictor: Any,
    config: ChannelSearchConfig,
) -> list[ArchSpec]:
    """Algorithm 2's Initialize_Population(P, T), as far as the caller provides it: the anchor (:func:`_anchor`), and
    under ``eq`` random configurations walked layer by layer until predicted within the tolerance of T
    (:func:`edgenas.search.coverage.archs_near`): uniform draws rarely land in a +-2% band at the edge of the range.
    The evolution fills the rest of the first population with random feasible draws."""
    from edgenas.search.coverage import archs_near

    initial = _anchor(space, feasible, latency, config)
    if config.constraint != "eq":
        return initial
    wanted = config.evolution.population - len(initial)
    while wanted > 0:
        try:
            near = archs_near(
                predictor,
                space,
                config.target_ms,
                wanted,
                band=config.tolerance,
                seed=config.evolution.seed,
                exclude=[str(s) for s in initial],
            )
            return initial + [s for s in near if feasible(s)]
        except SearchError:  # fewer exist near T than asked for: ask for fewer
            wanted //= 2
    return initial


def _anchor(
    space: ChannelSpace, feasible: Callable[[ArchSpec], bool], latency: CachedPredictor, config: ChannelSearchConfig
) -> list[ArchSpec]:
    """The candidate that joins the first population: the unmodified network, or when it misses T the widest uniform
    scaling that meets it (none under ``eq`` when no uniform scaling lands in the band).

    Raises:
        TargetBelowChannelsError: under ``le``, T lies below even the narrowest configuration (every layer at the
            smallest scale).
    """
    from edgenas.spaces.channels import SCALES

    # uniform(1.0) is the unmodified net; then the others, widest first
    order = [1.0, *sorted((s for s in SCALES if s != 1.0), reverse=True)]
    meeting = [spec for spec in (space.uniform(s) for s in order) if feasible(spec)]
    narrowest = latency([space.uniform(min(SCALES))])[0]
    if config.constraint == "le" and narrowest > config.target_ms:
        raise TargetBelowChannelsError(
            f"T = {config.target_ms:g} ms lies below the narrowest channel configuration of this network (every layer "
            f"at x{SCALES[0]:g}: {narrowest:.4g} ms predicted): search the architecture for T again"
        )
    return meeting[:1]


def _baseline(
    history: list[Candidate],
    unscaled: ArchSpec,
    fitness: Callable[..., list[float]],
    latency: CachedPredictor,
    out: Path,
) -> dict[str, Any]:
    """The unmodified network's fitness and predicted latency: from the search when it took part, else probed once
    and kept in ``out`` (a resumed search does not probe it again)."""
    known = {c.spec.choices: c for c in history}
    if unscaled.choices in known:
        return known[unscaled.choices].as_dict()
    kept = out / UNMODIFIED_FILE
    if not kept.is_file():
        row = {"arch": str(unscaled), "fitness": fitness([unscaled])[0], "cost": latency([unscaled])[0]}
        write_text_atomic(kept, json.dumps(row | {"generation": None}) + "\n")
    return json.loads(kept.read_text())


@dataclass(frozen=True)
class _Landed:
    """The configuration the channel search hands on: the evolution's best, or where a device lands it, the closed
    loop's choice (its fitness scored like every candidate) and the loop's record."""

    candidate: Candidate
    loop: dict[str, Any] | None = None


def _land(
    result: Any,
    latency: CachedPredictor,
    config: ChannelSearchConfig,
    device: Any,
    landing: LandingPolicy,
    fitness: Callable[[list[ArchSpec]], list[float]],
) -> _Landed:
    """Land the evolution's best on T with ``device`` (nothing without one); a configuration the evolution never
    scored is scored now (generation :data:`LANDED_GENERATION`)."""
    from edgenas.hardware.device import latency_fn

    best = result.best
    if device is None:
        return _Landed(best)
    band = Band(config.target_ms, config.tolerance, config.constraint)
    loop = land_found(best.spec, latency.predictor, band, latency_fn(device, landing.loads), landing, ordered=True)
    known = {c.spec.choices: c for c in result.history}
    chosen = known.get(loop.chosen.choices)
    if chosen is None:
        (cost,) = latency([loop.chosen])
        chosen = Candidate(loop.chosen, fitness([loop.chosen])[0], cost, LANDED_GENERATION)
    return _Landed(chosen, loop.as_dict())


def _summary(
    space: ChannelSpace,
    config: ChannelSearchConfig,
    result: Any,
    baseline: dict[str, Any],
    device: Any,
    landed: _Landed,
) -> dict[str, Any]:
    chosen = landed.candidate
    measured = [m.nominal_ms for m in device.measure([chosen.spec, space.unscaled])] if device else [None, None]
    found = {
        "channels": str(chosen.spec),
        "scales": space.scales(chosen.spec),
        "fitness": chosen.fitness,
        "predicted_ms": chosen.cost,
        "measured_ms": measured[0],
    }
    unmodified = {
        "arch": str(space.base_spec),
        "fitness": baseline["fitness"],
        "predicted_ms": baseline["cost"],
        "measured_ms": measured[1],
    }
    return {
        "base": {"space": space.base_spec.space, "arch": str(space.base_spec)},
        "channel_space": {k: space.describe()[k] for k in ("space", "space_hash", "options", "size", "log10_size")},
        "target_ms": config.target_ms,
        "constraint": config.constraint,
        "found": found,
        "unmodified": unmodified,
        "searched": None if chosen is result.best else {"channels": str(result.best.spec), **result.best.as_dict()},
        "landing": landed.loop,
        "candidates": len(result.history),
        "evolution": result.summary() | {"history": None},
        "history": [c.as_dict() | {"spec": None} for c in result.history],
        "config": asdict(config),
    }


def _anchors(space: ChannelSpace) -> list[ArchSpec]:
    from edgenas.spaces.channels import SCALES

    return list(dict.fromkeys([space.unscaled, *(space.uniform(s) for s in SCALES)]))


def profile_specs(space: ChannelSpace, n: int, seed: int = 0) -> list[ArchSpec]:
    """The ``n`` configurations a channel predictor is fitted on: the unmodified network and every uniform scale,
    then random ones.

    Raises:
        SearchError: ``n`` too small to hold those and a test share.
    """
    anchors = _anchors(space)
    if n < len(anchors) + 5:
        raise SearchError(f"a channel predictor needs at least {len(anchors) + 5} measured configurations, got {n}")
    return anchors + space.sample(seed=seed, n=n - len(anchors))


#: How the configurations a channel predictor is fitted on are drawn (after the anchors): ``uniform`` draws every
#: layer's scale uniformly (thesis, the default), ``cover`` spreads half of them over the predicted latency range
#: (:func:`edgenas.search.coverage.profile_covering`). Uniform draws centre on a mean scale of 1.25, so the unmodified
#: net (x1) sits in their fast tail; but on this CPU covering did not land the found configuration closer to T
#: (benchmarks/results/channels_{uniform,cover}.md), so it stays an option.
SAMPLINGS = ("uniform", "cover")


def measure_channel_profile(
    space: ChannelSpace,
    device: Any,
    db: Any,
    n: int,
    *,
    sampling: str = "uniform",
    seed: int = 0,
    **profile_options: Any,
) -> str:
    """Measure ``n`` configurations into the store ``db``: the anchors of :func:`profile_specs` (the unmodified net and
    every uniform scale), then the rest drawn by ``sampling``, on ``device`` (:class:`edgenas.hardware.device.Device`);
    stored ones are skipped (a killed call resumes). ``profile_options`` go to ``device.profile``. Returns the
    device's name in the store.

    Raises:
        SearchError: an unknown sampling, or ``n`` too small.
    """
    from edgenas.search.coverage import profile_covering

    if sampling not in SAMPLINGS:
        raise SearchError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    specs = profile_specs(space, n, seed)  # the anchors, then uniform draws
    anchors = _anchors(space)
    report = device.profile(anchors, db, **profile_options)
    if sampling == "uniform":
        report = device.profile(specs[len(anchors) :], db, **profile_options)
    else:
        report = profile_covering(space, device, db, n - len(anchors), seed=seed, **profile_options)
    return report.device


def fit_channel_predictor(
    space: ChannelSpace,
    device: Any,
    store_path: str | Path,
    n: int,
    *,
    sampling: str = "uniform",
    kind: str = "mlp",
    seed: int = 0,
    device_name: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Measure ``n`` configurations on ``device`` into ``store_path`` (:func:`measure_channel_profile`) and fit a
    predictor on them (:func:`fit_on_store`).

    Raises:
        SearchError: an unknown sampling, or ``n`` too small to hold out a test share.
    """
    from edgenas.hardware import MeasurementStore

    with MeasurementStore(store_path) as db:
        name = measure_channel_profile(
            space,
            device,
            db,
            n,
            sampling=sampling,
            seed=seed,
            device_name=device_name,
            on_progress=None if on_progress is None else lambda done, total, *_: on_progress(done, total),
        )
    return fit_on_store(space, store_path, name, kind=kind, seed=seed)

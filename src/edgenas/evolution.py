"""A generic, resumable evolutionary search over any registered space (thesis Algorithm 2; Domino's mask search).

One generation: score the population (only candidates never scored before call the fitness), keep the ``top_k``
best of everything kept so far and this population, and breed ``population - top_k`` children from them:
``round(crossover_rate * n)`` by uniform crossover of two distinct parents, the rest by mutation of one parent
(each free layer redrawn with probability ``mutation_rate``, at least one). As in Algorithm 2 the next population is
the children plus the kept ones; ``iterations`` populations are scored, so a search scores at most
``population + (iterations - 1) * (population - top_k)`` distinct candidates (210 at the thesis' 20/20/10).

Constraints: every candidate scored satisfies ``feasible``. A child is redrawn until it is feasible and new, at most
``max_tries`` times; a generation that cannot breed enough new feasible children runs smaller (recorded as
``short``). The first population is the caller's ``initial`` candidates (infeasible ones refused) filled up with
random feasible draws; when ``max_tries * population`` random draws find no feasible architecture at all the search
stops with :class:`~edgenas.errors.EvolutionError`.

Resume: with a ``record`` file every scored candidate is appended as it is scored (JSON Lines). A new call with the
same settings replays the seeded draws and takes fitness from the record, so a killed search continues exactly where
it stopped without scoring anything twice, and ends where an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.errors import EvolutionError
from edgenas.spaces import ArchSpec, SearchSpace, spec_from_dict, spec_to_dict

Fitness = Callable[[list[ArchSpec]], Sequence[float]]
Feasible = Callable[[ArchSpec], bool]
Cost = Callable[[list[ArchSpec]], Sequence[float]]


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of the evolution (defaults: thesis Algorithm 2).

    Attributes:
        population: candidates scored per generation.
        iterations: generations scored.
        top_k: candidates kept as parents.
        crossover_rate: share of each generation's children made by crossover (the rest by mutation).
        mutation_rate: probability that a mutation redraws each free layer of its parent (at least one is redrawn).
        seed: seed of every draw.
        batch: the fitness is called with at most this many candidates at once (0: a whole generation).
        max_tries: draws per child before the generation gives up on it.
    """

    population: int = 20
    iterations: int = 20
    top_k: int = 10
    crossover_rate: float = 0.5
    mutation_rate: float = 0.5
    seed: int = 0
    batch: int = 0
    max_tries: int = 200

    def check(self) -> None:
        """Raise :class:`EvolutionError` for settings that cannot work."""
        if self.population < 2 or self.iterations < 1 or not 1 <= self.top_k < self.population:
            raise EvolutionError("population must be >= 2, iterations >= 1 and top_k in 1..population-1")
        if not (0 <= self.crossover_rate <= 1 and 0 < self.mutation_rate <= 1):
            raise EvolutionError("crossover_rate must be in [0, 1] and mutation_rate in (0, 1]")
        if self.batch < 0 or self.max_tries < 1:
            raise EvolutionError("batch must be >= 0 and max_tries >= 1")


@dataclass(frozen=True)
class Candidate:
    """One scored architecture: its fitness (higher is better; -inf when the fitness was not finite), its cost (e.g.
    predicted latency, ms; None without a cost function) and the generation that first scored it."""

    spec: ArchSpec
    fitness: float
    cost: float | None
    generation: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the arch in its human form and as a spec; a non-finite fitness as null)."""
        return {
            "arch": str(self.spec),
            "spec": spec_to_dict(self.spec),
            "fitness": self.fitness if math.isfinite(self.fitness) else None,
            "cost": self.cost,
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Candidate:
        """The inverse of :meth:`as_dict`."""
        fitness = values["fitness"]
        return cls(
            spec_from_dict(values["spec"]),
            float("-inf") if fitness is None else float(fitness),
            None if values.get("cost") is None else float(values["cost"]),
            int(values["generation"]),
        )


@dataclass
class EvolutionResult:
    """What a search found.

    Attributes:
        best: the fittest candidate scored.
        history: every candidate scored, in scoring order.
        generations: per generation the population (human forms), the best fitness so far, and how many children
            it lacked (``short``).
        pareto: candidates no other beats on both fitness (higher) and cost (lower); ``[best]`` without a cost.
        scored: fitness evaluations made by this call (the rest came from the record).
        config: the settings.
    """

    best: Candidate
    history: list[Candidate]
    generations: list[dict[str, Any]]
    pareto: list[Candidate]
    scored: int
    config: EvolutionConfig = field(default_factory=EvolutionConfig)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (best, Pareto front, generations, counts, settings)."""
        return {
            "best": self.best.as_dict(),
            "pareto": [c.as_dict() for c in self.pareto],
            "generations": self.generations,
            "candidates": len(self.history),
            "scored_now": self.scored,
            "config": asdict(self.config),
        }


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates not dominated in (fitness up, cost down), sorted by cost; the best alone when costs are missing."""
    if not candidates:
        return []
    if any(c.cost is None for c in candidates):
        return [max(candidates, key=lambda c: c.fitness)]
    front, best_fitness = [], float("-inf")
    for c in sorted(candidates, key=lambda c: (c.cost, -c.fitness)):
        if c.fitness > best_fitness:
            front.append(c)
            best_fitness = c.fitness
    return front


class _Record:
    """Scored candidates by choices, read from and appended to an optional JSON Lines file."""

    def __init__(self, path: Path | None, space: SearchSpace) -> None:
        self.path, self.space = path, space
        self.known: dict[tuple[int, ...], Candidate] = {}
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    self._remember(Candidate.from_dict(json.loads(line)))

    def _remember(self, candidate: Candidate) -> None:
        if candidate.spec.space_hash != self.space.config_hash:
            raise EvolutionError(f"{self.path} holds candidates of another space ({candidate.spec.space})")
        self.known[candidate.spec.choices] = candidate

    def add(self, candidates: Sequence[Candidate]) -> None:
        for candidate in candidates:
            self._remember(candidate)
        if self.path is not None and candidates:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.writelines(json.dumps(c.as_dict()) + "\n" for c in candidates)


class _Evolution:
    """One run of the engine (see the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        fitness: Fitness,
        feasible: Feasible,
        config: EvolutionConfig,
        cost: Cost | None,
        record: Path | None,
    ) -> None:
        config.check()
        self.space, self.fitness, self.feasible, self.config, self.cost = space, fitness, feasible, config, cost
        self.rng = np.random.default_rng(config.seed)
        self.record = _Record(record, space)
        self.history: list[Candidate] = []
        self.scored = 0

    def initial(self, given: Sequence[ArchSpec]) -> list[ArchSpec]:
        population: dict[tuple[int, ...], ArchSpec] = {}
        for spec in given:
            spec = self.space.check_spec(spec)
            if not self.feasible(spec):
                raise EvolutionError(f"the initial candidate {spec} does not satisfy the constraint")
            population.setdefault(spec.choices, spec)
        draws = self.config.max_tries * self.config.population
        for _ in range(draws):
            if len(population) >= self.config.population:
                break
            spec = self.space.sample(self.rng)[0]
            if spec.choices not in population and self.feasible(spec):
                population[spec.choices] = spec
        if not population:
            raise EvolutionError(
                f"no architecture of {self.space.name} satisfied the constraint in {draws} random draws: "
                "loosen the constraint (a higher latency target, a wider tolerance)"
            )
        return list(population.values())

    def score(self, population: list[ArchSpec], generation: int) -> list[Candidate]:
        fresh = [s for s in population if s.choices not in self.record.known]
        fresh = list({s.choices: s for s in fresh}.values())
        step = self.config.batch or max(1, len(fresh))
        for start in range(0, len(fresh), step):
            chunk = fresh[start : start + step]
            values = [float(v) for v in self.fitness(chunk)]
            costs = [float(c) for c in self.cost(chunk)] if self.cost is not None else [None] * len(chunk)
            if len(values) != len(chunk) or len(costs) != len(chunk):
                raise EvolutionError(f"the fitness returned {len(values)} values for {len(chunk)} candidates")
            new = [
                Candidate(s, v if math.isfinite(v) else float("-inf"), c, generation)
                for s, v, c in zip(chunk, values, costs, strict=True)
            ]
            self.record.add(new)
            self.scored += len(new)
        scored = [self.record.known[s.choices] for s in population]
        seen = {c.spec.choices for c in self.history}
        self.history.extend(c for c in dict.fromkeys(scored) if c.spec.choices not in seen)
        return scored

    def breed(self, parents: list[Candidate], n: int) -> list[ArchSpec]:
        # what this replay has scored, not the whole record: a resumed run must draw what the first run drew
        taken = {c.spec.choices for c in self.history} | {p.spec.choices for p in parents}
        n_cross = round(self.config.crossover_rate * n) if len(parents) > 1 else 0
        children = []
        for i in range(n):
            child = self._child(parents, crossover=i < n_cross, taken=taken)
            if child is not None:
                taken.add(child.choices)
                children.append(child)
        return children

    def _child(self, parents: list[Candidate], *, crossover: bool, taken: set[tuple[int, ...]]) -> ArchSpec | None:
        free = sum(len(ops) > 1 for ops in self.space.allowed_ops)
        for _ in range(self.config.max_tries):
            if crossover:
                a, b = self.rng.choice(len(parents), size=2, replace=False)
                child = self.space.crossover(parents[a].spec, parents[b].spec, self.rng)
            else:
                parent = parents[self.rng.integers(len(parents))].spec
                layers = max(1, int(self.rng.binomial(free, self.config.mutation_rate)))
                child = self.space.mutate(parent, self.rng, num_layers=layers)
            if child.choices not in taken and self.feasible(child):
                return child
        return None

    def run(
        self, initial: Sequence[ArchSpec], on_generation: Callable[[int, Candidate], None] | None
    ) -> EvolutionResult:
        population = self.initial(initial)
        kept: list[Candidate] = []
        generations = []
        for generation in range(self.config.iterations):
            scored = self.score(population, generation)
            pool = {c.spec.choices: c for c in (*kept, *scored)}
            kept = sorted(pool.values(), key=lambda c: -c.fitness)[: self.config.top_k]
            lacking = self.config.population - len(population)
            generations.append(
                {"generation": generation, "population": [str(s) for s in population], "best": kept[0].fitness}
                | ({"short": lacking} if lacking > 0 else {})
            )
            if on_generation is not None:
                on_generation(generation + 1, kept[0])
            if generation + 1 < self.config.iterations:
                population = [c.spec for c in kept] + self.breed(kept, self.config.population - len(kept))
        best = max(self.history, key=lambda c: c.fitness)
        return EvolutionResult(best, self.history, generations, pareto_front(self.history), self.scored, self.config)


def evolve(
    space: SearchSpace,
    fitness: Fitness,
    feasible: Feasible | None = None,
    config: EvolutionConfig | None = None,
    *,
    cost: Cost | None = None,
    initial: Sequence[ArchSpec] = (),
    record: str | Path | None = None,
    on_generation: Callable[[int, Candidate], None] | None = None,
) -> EvolutionResult:
    """Maximise ``fitness`` over ``space`` subject to ``feasible`` (see the module docstring).

    Args:
        space: the space searched (its sample, mutate and crossover are used).
        fitness: scores a list of specs (higher is better); called only for candidates never scored before.
        feasible: the constraint every scored candidate satisfies (default: none).
        config: population, iterations, top-k, rates, seed, batch, tries.
        cost: optional second objective to minimise (e.g. predicted latency, ms), recorded and used for the Pareto
            front.
        initial: candidates placed in the first population (e.g. the unmodified network).
        record: JSON Lines file of scored candidates; an existing one is resumed from.
        on_generation: called after each scored generation with its number (1-based) and the best so far.

    Raises:
        EvolutionError: bad settings, an infeasible initial candidate, no feasible architecture found, or a record
            of another space.
    """
    engine = _Evolution(
        space,
        fitness,
        feasible or (lambda _: True),
        config or EvolutionConfig(),
        cost,
        None if record is None else Path(record),
    )
    return engine.run(initial, on_generation)

"""Domino's search (thesis Sec 5.3.2-5.3.4): which blocks of a network to graft, under a measured latency budget.

    maximise ACC(alpha) subject to LAT(alpha) <= T,   alpha in {0, 1}^L (0 = grafted)

* LAT: the vanilla latency predictor, an MLP 128-64-1 over the mask fitted on masks measured *after collapse* on a
  runtime (:func:`measure_masks`; every runtime measures the deployed form).
* ACC: the meta-accuracy predictor (:mod:`edgenas.predictors.meta`): MAML meta-trained on proxy pairs (short
  trainings at low resolution, one task per epoch budget) and adapted on a few target pairs (:func:`collect_pairs`
  trains masks and keeps every pair in a JSON Lines table, so a killed collection resumes).
* The search is the generic evolutionary engine (:func:`edgenas.evolution.evolve`) with fitness ACC and the
  constraint LAT <= T; :func:`random_masks` draws the baseline of thesis Fig 5.14 (random masks meeting T).

The found mask is then trained (Train-First, or Reparameterize-First as the ablation of Fig 5.15), optionally
distilled from the ungrafted network, collapsed, exported and measured: :mod:`edgenas.search.domino_deploy`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgenas.errors import DominoError
from edgenas.evolution import EvolutionConfig, EvolutionResult, evolve
from edgenas.predictors.base import CachedPredictor
from edgenas.predictors.meta import MetaConfig, MetaLearner, Task, predict_accuracy
from edgenas.spaces import ArchSpec
from edgenas.spaces.domino import MaskSpace
from edgenas.train.data import ImageData


# ----- latency: masks measured after collapse -------------------------------------------------------------------------
def latency_masks(space: MaskSpace, n: int, seed: int = 0) -> list[ArchSpec]:
    """The ``n`` masks a latency predictor is fitted on: the ungrafted and the all-grafted network, then uniform
    draws (each block grafted with probability 1/2).

    Raises:
        DominoError: ``n`` below 10 (too few to hold out a test share).
    """
    if n < 10:
        raise DominoError(f"a mask latency predictor needs at least 10 measured masks, got {n}")
    anchors = [space.keep_all(), space.graft_all()]
    drawn = [s for s in space.sample(seed=seed, n=n) if s not in anchors]
    return anchors + drawn[: n - 2]


def measure_masks(space: MaskSpace, device: Any, db: Any, n: int, *, seed: int = 0, **profile_options: Any) -> str:
    """Measure :func:`latency_masks` on ``device`` (an :class:`edgenas.hardware.device.Device`) into the store ``db``
    (stored ones are skipped, so a killed call resumes); returns the device's name in the store."""
    return device.profile(latency_masks(space, n, seed), db, **profile_options).device


def predicted_latency(predictor: Any, space: MaskSpace) -> CachedPredictor:
    """The latency predictor's ms for masks of ``space``, cached (raises DominoError for another network's)."""
    return CachedPredictor(predictor, space, "mask space of this network", DominoError)


# ----- accuracy pairs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairSchedule:
    """How one mask is trained to give an accuracy pair.

    Attributes:
        epochs: training epochs (a pair is recorded after each).
        images: class-balanced training images.
        test_images: class-balanced test images the accuracy is measured on.
        resolution: input side (px; the proxy task trains at a low one).
        batch_size: batch size.
        lr: peak learning rate (SGD, momentum 0.9, cosine).
        seed: seed of initialisation, order and augmentation.
    """

    epochs: int
    images: int
    test_images: int
    resolution: int
    batch_size: int = 64
    lr: float = 0.05
    seed: int = 0

    def check(self) -> None:
        if min(self.epochs, self.images, self.test_images, self.resolution, self.batch_size) < 1 or self.lr <= 0:
            raise DominoError(f"pair schedule {self}: counts must be >= 1 and lr > 0")
        if self.batch_size > self.images:
            raise DominoError(f"pair schedule: batch size {self.batch_size} exceeds the {self.images} images")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


#: The cheap proxy task (thesis: 1,000 nets on a 10-class ImageNet subset; here a small CIFAR-10 subset at 16 px).
PROXY_SCHEDULE = PairSchedule(epochs=3, images=1000, test_images=500, resolution=16)


def train_mask(
    space: MaskSpace, spec: ArchSpec, data: ImageData, schedule: PairSchedule, start: nn.Module | None = None
) -> list[float]:
    """Train the grafted network of ``spec`` on ``schedule`` from scratch, or from ``start`` (the trained network,
    grafted; its weights kept); its test top-1 (%) after every epoch."""
    from edgenas._random import seeded_torch
    from edgenas.nn.graft import graft
    from edgenas.train import TrainConfig, train

    config = TrainConfig(
        epochs=schedule.epochs,
        batch_size=schedule.batch_size,
        lr=schedule.lr,
        seed=schedule.seed,
        train_subset=schedule.images,
        test_subset=schedule.test_images,
        log_every=0,
        device="cpu",
    )
    if start is not None:
        model = graft(copy.deepcopy(start), spec.choices, keep_activation=space.config.keep_activation)
    else:
        with seeded_torch(schedule.seed):
            model = space.build(spec)
    with tempfile.TemporaryDirectory(prefix="edgenas-pair-") as run:
        result = train(model, data, config, run, spec=spec, input_size=schedule.resolution)
    return [float(record["test_top1"]) for record in result.history]


class PairTable:
    """(mask, accuracy-per-epoch) pairs of one mask space in a JSON Lines file, one row per trained mask and task."""

    def __init__(self, path: str | Path, space: MaskSpace) -> None:
        self.path, self.space = Path(path), space
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    self.rows.append(json.loads(line))
        others = {r["space_hash"] for r in self.rows} - {space.config_hash}
        if others:
            raise DominoError(f"{self.path} holds pairs of another network (mask space {sorted(others)})")

    def get(self, task: str, schedule: PairSchedule) -> dict[tuple[int, ...], list[float]]:
        """``mask choices -> top-1 per epoch`` of ``task`` trained on ``schedule``."""
        key = schedule.key()
        return {
            tuple(int(c) for c in r["mask"]): r["top1"] for r in self.rows if r["task"] == task and r["schedule"] == key
        }

    def add(self, task: str, schedule: PairSchedule, spec: ArchSpec, top1: list[float]) -> None:
        row = {
            "task": task,
            "schedule": schedule.key(),
            "settings": asdict(schedule),
            "space_hash": self.space.config_hash,
            "mask": self.space.format(spec),
            "top1": top1,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:  # one line per pair, flushed: a killed collection loses at most one
            f.write(json.dumps(row) + "\n")
        self.rows.append(row)


def collect_pairs(
    table: PairTable,
    specs: Sequence[ArchSpec],
    data: ImageData,
    schedule: PairSchedule,
    task: str,
    *,
    start: nn.Module | None = None,
    on_pair: Callable[[int, int, ArchSpec, list[float]], None] | None = None,
) -> dict[tuple[int, ...], list[float]]:
    """Train every mask of ``specs`` not yet in ``table`` for ``task`` on ``schedule`` (from ``start``'s weights when
    given, see :func:`train_mask`); returns all of the task's pairs among ``specs``. ``on_pair(done, total, spec,
    top1)`` reports progress."""
    schedule.check()
    known = table.get(task, schedule)
    for i, spec in enumerate(specs):
        if spec.choices not in known:
            known[spec.choices] = train_mask(table.space, spec, data, schedule, start)
            table.add(task, schedule, spec, known[spec.choices])
        if on_pair is not None:
            on_pair(i + 1, len(specs), spec, known[spec.choices])
    return {s.choices: known[s.choices] for s in specs}


def proxy_tasks(pairs: dict[tuple[int, ...], list[float]]) -> list[Task]:
    """One regression task per epoch budget of the proxy pairs (accuracy after 1, 2, ... epochs)."""
    masks = list(pairs)
    epochs = min(len(v) for v in pairs.values())
    return [Task.of(masks, [pairs[m][e] for m in masks], name=f"proxy@{e + 1}ep") for e in range(epochs)]


def final_task(pairs: dict[tuple[int, ...], list[float]], name: str = "target") -> Task:
    """The pairs' accuracy after their last epoch as one task."""
    masks = list(pairs)
    return Task.of(masks, [pairs[m][-1] for m in masks], name=name)


class PredictedAccuracy:
    """The meta-accuracy predictor adapted to the target: predicted top-1 (%) of masks, cached."""

    def __init__(self, net: Any, space: MaskSpace) -> None:
        self.net, self.space, self.cache = net, space, {}

    @classmethod
    def meta_learned(
        cls, space: MaskSpace, proxy: Sequence[Task], shots: Task, config: MetaConfig
    ) -> PredictedAccuracy:
        """MAML on the proxy tasks, adapted on the target shots."""
        learner = MetaLearner(space.num_layers, config)
        learner.meta_train(proxy)
        return cls(learner.adapted(shots), space)

    def __call__(self, specs: list[ArchSpec]) -> list[float]:
        import torch

        todo = [s for s in specs if s.choices not in self.cache]
        if todo:
            x = torch.tensor([list(s.choices) for s in todo], dtype=torch.float32)
            self.cache.update({s.choices: float(v) for s, v in zip(todo, predict_accuracy(self.net, x), strict=True)})
        return [self.cache[s.choices] for s in specs]


# ----- the search -----------------------------------------------------------------------------------------------------
def search_masks(
    space: MaskSpace,
    accuracy: Callable[[list[ArchSpec]], list[float]],
    latency: Callable[[list[ArchSpec]], list[float]],
    target_ms: float,
    config: EvolutionConfig,
    *,
    record: str | Path | None = None,
    on_generation: Callable[[int, Any], None] | None = None,
) -> EvolutionResult:
    """Thesis Sec 5.3.4: the evolution maximising predicted accuracy subject to predicted latency <= ``target_ms``.

    Raises:
        DominoError: the target lies below the predicted latency of every mask the search can find.
    """
    from edgenas.errors import EvolutionError

    try:
        return evolve(
            space,
            accuracy,
            lambda spec: latency([spec])[0] <= target_ms,
            config,
            cost=latency,
            record=record,
            on_generation=on_generation,
        )
    except EvolutionError as exc:
        fastest = min(latency([space.graft_all(), space.keep_all()]))
        raise DominoError(
            f"no grafting mask is predicted to meet T = {target_ms:g} ms (graft all / none: {fastest:.4g} ms at best); "
            "raise the target or compress another way"
        ) from exc


def random_masks(
    space: MaskSpace, latency: Callable[[list[ArchSpec]], list[float]], target_ms: float, n: int, seed: int = 0
) -> list[ArchSpec]:
    """Thesis Fig 5.14's baseline: ``n`` uniform random masks predicted to meet ``target_ms`` (fewer if 100 x ``n``
    draws do not hold that many)."""
    drawn = space.sample(seed=seed, n=100 * n)
    meeting = [s for s, ms in zip(drawn, latency(drawn), strict=True) if ms <= target_ms]
    return list(dict.fromkeys(meeting))[:n]

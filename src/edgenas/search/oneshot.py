"""One-shot accuracy: how well an architecture does with the weights it inherits from a trained supernet.

A cheap proxy of stand-alone accuracy (Guo et al., *Single Path One-Shot*, ECCV 2020, recalibrate BatchNorm per path
the same way): for each arch, fix its path, re-estimate the BatchNorm statistics on a few training batches (the
supernet's running statistics mix every path), then count correct predictions on held-out images. It ranks the
candidates a run measured against the arch the search found, at the same latency, without training any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgenas.search.engine import SearchConfig, build_supernet, search_split
from edgenas.spaces import ArchSpec, SearchSpace
from edgenas.train import ImageData
from edgenas.train.checkpoint import load_checkpoint
from edgenas.train.data import BatchTransform

#: Training batches that re-estimate BatchNorm statistics per arch.
CALIBRATION_BATCHES = 2
#: Images per batch of the calibration and the evaluation.
BATCH = 100


def load_supernet(run: str | Path, space: SearchSpace, config: SearchConfig) -> nn.Module:
    """The supernet of a finished search run (its ``checkpoints/last.pt``), on the CPU, in eval mode."""
    supernet = build_supernet(space, config)
    supernet.load_state_dict(load_checkpoint(Path(run) / "checkpoints" / "last.pt")["supernet"])
    return supernet.eval()


def _batches(data: ImageData, indices: np.ndarray, test: bool, transform: BatchTransform):
    dataset = data.test if test else data.train
    for start in range(0, len(indices), BATCH):
        chunk = indices[start : start + BATCH]
        images = torch.stack([dataset[int(i)][0] for i in chunk])
        labels = torch.tensor([int(dataset[int(i)][1]) for i in chunk])
        yield transform(images, torch.as_tensor(chunk)), labels


@torch.no_grad()
def oneshot_accuracy(
    supernet: nn.Module,
    specs: Sequence[ArchSpec],
    data: ImageData,
    config: SearchConfig,
    *,
    n_eval: int = 300,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Top-1 (%) of each arch with the supernet's weights, on ``n_eval`` images the weights were not trained on (the
    search's architecture split; the test split for a one-level search, which holds nothing out)."""
    space = supernet.space
    transform = BatchTransform(data.mean, data.std, augment=False, size=space.resolution)
    w_idx, a_idx = search_split(data.train_labels, config)
    rng = np.random.default_rng(config.seed)
    calibration = rng.permutation(w_idx)[: CALIBRATION_BATCHES * BATCH]
    held_out = a_idx if len(a_idx) else np.arange(len(data.test_labels))
    evaluation = np.sort(rng.permutation(held_out)[:n_eval])
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    cached_calibration = list(_batches(data, calibration, False, transform))
    cached_evaluation = list(_batches(data, evaluation, not len(a_idx), transform))
    accuracies = []
    for i, spec in enumerate(specs):
        supernet.fix_path(spec)
        for bn in norms:  # a cumulative average over the calibration batches, from scratch for every arch
            bn.reset_running_stats()
            bn.momentum = None
        supernet.train()
        for x, _ in cached_calibration:
            supernet(x)
        supernet.eval()
        correct = sum(int((supernet(x).argmax(1) == y).sum()) for x, y in cached_evaluation)
        accuracies.append(100.0 * correct / len(evaluation))
        if on_progress is not None:
            on_progress(i + 1, len(specs))
    return accuracies

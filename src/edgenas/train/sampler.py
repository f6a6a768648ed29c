"""A DistributedSampler that can start in the middle of an epoch, for exact resume."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (seeded per epoch, sharded by rank) that skips the first ``start`` samples of its shard.

    With one process (``num_replicas=1``) it is a seeded shuffle; with N ranks, rank r takes every N-th sample of
    the same permutation, so one process with global batch B and N processes with batch B/N see the same samples in
    each step.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int, drop_last: bool):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's shard in the current epoch (reset by ``set_epoch``)."""
        self.start = start

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start

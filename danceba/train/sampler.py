"""A deterministic, resumable, DDP-sharded batch sampler.

The data order is a pure function of ``(seed, epoch)``: epoch ``e`` visits the samples in the order
``np.random.default_rng((seed, e)).permutation(num_samples)``, cut into global batches of
``batch_size`` (an incomplete last batch is dropped). A run's position is just the number of global
batches consumed so far, so a checkpoint stores ``(epoch, position)`` and a restarted run continues
with exactly the batches the uninterrupted run would have drawn. DataLoader iterator state (and its
workers' prefetching) plays no part.

Under DDP each of the ``world_size`` processes takes its contiguous ``batch_size / world_size`` slice
of every global batch (the role of ``DistributedSampler``), so the union over ranks of one step's
batches is the single-process batch whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def batches_per_epoch(num_samples: int, batch_size: int) -> int:
    """Global batches in one epoch (incomplete last batch dropped); raises if there is none."""
    if num_samples < batch_size:
        raise ValueError(
            f"dataset has {num_samples} samples, fewer than one batch of batch_size={batch_size}"
        )
    return num_samples // batch_size


def epoch_permutation(num_samples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """Sample order of ``epoch``: a permutation seeded by ``(seed, epoch)``, or ``arange`` without shuffle.

    Returns: (num_samples,) int64.
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    return np.random.default_rng((seed, epoch)).permutation(num_samples).astype(np.int64)


class ResumableBatchSampler:
    """Yields this rank's index lists forever, starting after ``start_batch`` global batches.

    Args:
        num_samples: length of the data set.
        batch_size: global batch size; must be divisible by ``world_size``.
        seed: data-order seed (the same on every rank).
        rank, world_size: this process's place in the DDP group.
        shuffle: permute each epoch (``False`` keeps the data set order).
        start_batch: global batches already consumed (the step a run resumes from).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        start_batch: int = 0,
    ) -> None:
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} / world_size {world_size}: expected 0 <= rank < world_size")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
        if start_batch < 0:
            raise ValueError(f"start_batch: expected >= 0, got {start_batch}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.start_batch = start_batch
        self.per_epoch = batches_per_epoch(num_samples, batch_size)
        self.per_rank = batch_size // world_size

    def state_at(self, batches_consumed: int) -> dict[str, Any]:
        """The checkpointable position after ``batches_consumed`` global batches (plain ints)."""
        return {
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "epoch": batches_consumed // self.per_epoch,
            "position": batches_consumed % self.per_epoch,
        }

    def check_state(self, state: dict[str, Any]) -> int:
        """Check a stored state against this sampler's data set and order; return the batches consumed."""
        for key in ("num_samples", "batch_size", "seed", "shuffle"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"sampler state: {key} was {state.get(key)!r} in the checkpoint, "
                    f"now {getattr(self, key)!r}; the data order cannot be resumed"
                )
        return int(state["epoch"]) * self.per_epoch + int(state["position"])

    def __iter__(self) -> Iterator[list[int]]:
        epoch, position = divmod(self.start_batch, self.per_epoch)
        lo = self.rank * self.per_rank
        while True:
            order = epoch_permutation(self.num_samples, self.seed, epoch, self.shuffle)
            for batch in range(position, self.per_epoch):
                start = batch * self.batch_size + lo
                yield order[start : start + self.per_rank].tolist()
            epoch, position = epoch + 1, 0

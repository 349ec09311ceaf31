"""From a data set to batches on the device, in the order the resumable sampler decides.

The DataLoader only fetches and collates what :class:`~danceba.train.sampler.ResumableBatchSampler`
asks for; it is given its own generator so creating its iterator never draws from the global torch
RNG (that would shift every dropout mask after a resume). Random numbers drawn inside DataLoader
*workers* (``num_workers > 0``) are not part of a checkpoint: resume is bit-identical only for data
sets whose items do not depend on such draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from danceba.train.sampler import ResumableBatchSampler


class TensorBatchDataset(TensorDataset):
    """A ``TensorDataset`` that gathers a whole batch with one index operation per tensor.

    ``DataLoader`` calls ``__getitems__`` with a batch's indices; the result is already the batch
    (a tuple of (B, ...) tensors, equal to what the default collation of single items gives).
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)


def _already_collated(batch: Any) -> Any:
    return batch


def as_dataset(dataset: Dataset | tuple[torch.Tensor, ...] | list[torch.Tensor]) -> Dataset:
    """A sized torch ``Dataset`` as is; a tuple of tensors (same first dimension) as a :class:`TensorBatchDataset`."""
    if isinstance(dataset, tuple | list):
        if not dataset or not all(isinstance(t, torch.Tensor) for t in dataset):
            raise TypeError("dataset: expected a torch Dataset or a non-empty tuple of tensors")
        if len({t.shape[0] for t in dataset}) != 1:
            raise ValueError(f"dataset: tensors differ in length {[t.shape[0] for t in dataset]}")
        return TensorBatchDataset(*dataset)
    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset: expected a sized torch Dataset or a tuple of tensors, got {type(dataset)}")
    return dataset


def batch_iterator(
    dataset: Dataset,
    sampler: ResumableBatchSampler,
    num_workers: int,
    device: torch.device,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> Iterator[Any]:
    """An endless iterator over collated batches (CPU, pinned on CUDA), starting at the sampler's position."""
    if collate_fn is None and isinstance(dataset, TensorBatchDataset):
        collate_fn = _already_collated
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(sampler.seed + sampler.rank),
    )
    return iter(loader)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch of tuples, lists and dicts to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device) for v in batch)
    return batch

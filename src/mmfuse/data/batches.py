"""In-memory data sets indexed a whole batch at a time.

A `DataLoader` with `batch_size=None` and a `BatchSampler` as its sampler
hands a list of indices to `__getitem__`, so one fancy-indexing call per
tensor builds the batch: no per-sample Python in the training loop.
"""
from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class TensorDictDataset(Dataset):
    """Holds `dict[str, Tensor]` with a shared first dimension."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all tensors must have the same length, got {sizes}")
        self.tensors = tensors
        self._len = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        if not isinstance(index, (list, torch.Tensor)):
            index = [index]
        index = torch.as_tensor(index, dtype=torch.long)
        return {k: v[index] for k, v in self.tensors.items()}

    def subset(self, index: torch.Tensor) -> "TensorDictDataset":
        return TensorDictDataset({k: v[index] for k, v in self.tensors.items()})


def batch_loader(
    dataset: TensorDictDataset,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader that yields whole batches built by one indexing call each."""
    if shuffle:
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
        batch_size=None,
        num_workers=0,
        pin_memory=pin_memory,
    )

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


class ShardedBatchSampler:
    """Each process of a distributed run takes its share (rank::world) of every batch of `batches`.

    All processes draw the same batches (same seed), so one step of W processes
    together sees exactly the batch a single process would: with gradients
    averaged across processes, distributed training follows the same
    trajectory as single-process training. Training batches smaller than W
    are dropped so that every process steps the same number of times.
    """

    def __init__(self, batches: BatchSampler, rank: int, world: int, train: bool):
        self.batches, self.rank, self.world, self.train = batches, rank, world, train

    def _keeps(self, size: int) -> bool:
        """Whether a batch of `size` samples gives this process a share (the one rule __iter__ and __len__ follow)."""
        return size > self.rank and (not self.train or size >= self.world)

    def __iter__(self):
        for batch in self.batches:
            if self._keeps(len(batch)):
                yield batch[self.rank::self.world]

    def __len__(self) -> int:
        """The shares __iter__ yields, counted from the batch sizes without drawing a batch (drawing would advance the
        shuffling generator): the full batches, then the last, smaller one unless drop_last."""
        full, rest = divmod(len(self.batches.sampler), self.batches.batch_size)
        last = rest if rest and not self.batches.drop_last else 0
        return full * self._keeps(self.batches.batch_size) + (self._keeps(last) if last else 0)


def batch_loader(
    dataset: TensorDictDataset,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    rank: int = 0,
    world: int = 1,
) -> DataLoader:
    """A DataLoader that yields whole batches built by one indexing call each (this process's share of each, in DDP)."""
    if shuffle:
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    return DataLoader(
        dataset,
        sampler=ShardedBatchSampler(batches, rank, world, train=shuffle) if world > 1 else batches,
        batch_size=None,
        num_workers=0,
        pin_memory=pin_memory,
    )

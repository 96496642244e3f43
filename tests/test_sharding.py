"""ShardedBatchSampler: in DDP each process takes its share (rank::world) of every batch a single process would draw."""
from __future__ import annotations

import pytest
import torch

from mmfuse.data.batches import TensorDictDataset, batch_loader

# (samples, batch size, drop_last): full batches only, a last batch of 2, a last batch of 1 (smaller than 2 or 3 ranks)
SHAPES = [(12, 4, False), (10, 4, False), (9, 4, False), (9, 4, True), (7, 2, False), (3, 8, False)]


def indices(n: int, batch_size: int, drop_last: bool, shuffle: bool, rank: int = 0, world: int = 1):
    """(len(loader), the index lists the loader yields) for one process."""
    data = TensorDictDataset({"index": torch.arange(n)})
    loader = batch_loader(data, batch_size, shuffle=shuffle, seed=7, drop_last=drop_last, rank=rank, world=world)
    return len(loader), [batch["index"].tolist() for batch in loader]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("n, batch_size, drop_last", SHAPES)
def test_training_shares_are_disjoint_and_together_the_single_process_batch(n, batch_size, drop_last, world):
    _, single = indices(n, batch_size, drop_last, shuffle=True)
    shares = [indices(n, batch_size, drop_last, shuffle=True, rank=r, world=world) for r in range(world)]
    kept = [batch for batch in single if len(batch) >= world]  # smaller batches would leave a process without a step
    for rank, (length, yielded) in enumerate(shares):
        assert length == len(yielded) == len(kept), (rank, length, yielded)
        assert yielded == [batch[rank::world] for batch in kept]  # this rank's share of each batch, in its order
    for step, batch in enumerate(kept):
        parts = [set(yielded[step]) for _, yielded in shares]
        assert set().union(*parts) == set(batch) and sum(map(len, parts)) == len(batch)  # disjoint, together the batch


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("n, batch_size, drop_last", SHAPES)
def test_evaluation_shares_cover_every_sample_once(n, batch_size, drop_last, world):
    """Validation and test never drop a sample: a batch smaller than the world leaves some processes without a share."""
    _, single = indices(n, batch_size, drop_last, shuffle=False)
    shares = [indices(n, batch_size, drop_last, shuffle=False, rank=r, world=world) for r in range(world)]
    for rank, (length, yielded) in enumerate(shares):
        assert length == len(yielded)
        assert yielded == [batch[rank::world] for batch in single if batch[rank::world]]
    seen = sorted(i for _, yielded in shares for share in yielded for i in share)
    assert seen == sorted(i for batch in single for i in batch)


def test_length_does_not_draw_from_the_shuffling_generator():
    """len() is asked before iterating: it must not advance the seeded order that every process shares."""
    data = TensorDictDataset({"index": torch.arange(10)})
    loader = batch_loader(data, 4, shuffle=True, seed=7, rank=1, world=2)
    untouched = batch_loader(data, 4, shuffle=True, seed=7, rank=1, world=2)
    assert len(loader) == 3
    assert [b["index"].tolist() for b in loader] == [b["index"].tolist() for b in untouched]

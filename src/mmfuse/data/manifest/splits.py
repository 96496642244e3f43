"""Which split each sample is in: the manifest's split column, or a split seeded by `data_seed`."""
from __future__ import annotations

import logging

import torch

from mmfuse.data.manifest.options import SplitOptions
from mmfuse.data.stratify import stratified_counts

log = logging.getLogger(__name__)


def assign_splits(given: list[str | None], row_index: list[int], n_rows: int, labels: torch.Tensor, task: str,
                  num_classes: int, options: SplitOptions) -> tuple[list[str], bool]:
    """Each sample's split name, and whether the split was stratified by label.

    given: the split column's value per sample (None everywhere without the column); row_index: each sample's
    position among all `n_rows` rows of the manifest.
    """
    if all(s is not None for s in given):
        return given, False  # type: ignore[return-value]
    # seeded by the row's position among all manifest rows, so a skipped row moves no other row (stratified:
    # its class's count changes, which may move a row at a split boundary)
    generator = torch.Generator().manual_seed(options.data_seed)
    perm = torch.randperm(n_rows, generator=generator)
    rank = torch.empty(n_rows, dtype=torch.long)
    rank[perm] = torch.arange(n_rows)
    if options.stratify and task == "multiclass":
        ranks = [int(rank[i]) for i in row_index]
        return stratified_splits(ranks, labels.tolist(), num_classes, options.split, generator), True
    if options.stratify:
        log.info("data.stratify: a %s task has no single class per row to stratify by; plain seeded split", task)
    n_train = int(round(options.split[0] * n_rows))
    n_val = int(round(options.split[1] * n_rows))
    names = []
    for i in row_index:
        r = int(rank[i])
        names.append("train" if r < n_train else "val" if r < n_train + n_val else "test")
    return names, False


def stratified_splits(ranks: list[int], labels: list[int], num_classes: int, fractions: tuple[float, ...],
                      generator: torch.Generator) -> list[str]:
    """Each class's rows in their seeded order: the first train, the next validate, the rest test."""
    members: dict[int, list[int]] = {k: [] for k in range(num_classes)}
    for j in sorted(range(len(ranks)), key=ranks.__getitem__):
        members[labels[j]].append(j)
    order = torch.randperm(num_classes, generator=generator).tolist()
    counts = stratified_counts([len(members[k]) for k in range(num_classes)], fractions, order)
    names = [""] * len(ranks)
    for k, (n_train, n_val, _) in enumerate(counts):
        for position, j in enumerate(members[k]):
            names[j] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
    return names

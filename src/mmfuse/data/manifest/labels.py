"""The task, the classes and the label tensor of the samples; a sample whose label does not fit is left out."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from mmfuse.data.manifest.options import LabelOptions
from mmfuse.data.manifest.samples import Sample, where
from mmfuse.data.readers import SampleErrors
from mmfuse.data.rows import is_number


@dataclass
class Labels:
    task: str                      # multiclass, multilabel or regression
    class_names: list[str] | None  # None for regression
    values: torch.Tensor           # (N,) class ids, (N, C) multi-hot, or (N,) float32 targets, of the kept samples
    keep: list[int]                # indices of the samples whose label is usable

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names is not None else 1


def infer_task(samples: list[Sample], options: LabelOptions) -> str:
    """data.task, or for `auto`: multilabel when any sample has several labels (or a JSON list), else multiclass."""
    if options.task != "auto":
        return options.task
    several = any(len(s.label) != 1 or isinstance(s.row.values.get(options.label_column), list) for s in samples)
    return "multilabel" if several else "multiclass"


def build_labels(path: Path, samples: list[Sample], options: LabelOptions, errors: SampleErrors) -> Labels:
    task = infer_task(samples, options)
    column = options.label_column
    if task == "regression":
        keep, values = [], []
        for i, s in enumerate(samples):
            if len(s.label) != 1 or not is_number(s.label[0]) or not math.isfinite(float(s.label[0])):
                errors("bad_label", f"{where(path, s.row, column)}: {'|'.join(s.label)!r} is not a number "
                                    "(data.task=regression)")
                continue
            keep.append(i)
            values.append(float(s.label[0]))
        return Labels(task, None, torch.tensor(values, dtype=torch.float32), keep)
    if options.classes:
        classes = list(dict.fromkeys(options.classes))
    else:
        seen = sorted({t for s in samples for t in s.label})
        classes = sorted(seen, key=float) if all(is_number(t) for t in seen) else seen
    index = {c: i for i, c in enumerate(classes)}
    keep, targets = [], []
    for i, s in enumerate(samples):
        unknown = [t for t in s.label if t not in index]
        if unknown:
            errors("unknown_label", f"{where(path, s.row, column)}: label {unknown[0]!r} is not one of "
                                    f"data.classes {classes}")
            continue
        if task == "multiclass" and len(s.label) != 1:
            errors("bad_label", f"{where(path, s.row, column)}: {len(s.label)} labels {s.label} "
                                "for a multiclass task (data.task=multilabel allows several)")
            continue
        keep.append(i)
        targets.append([index[t] for t in s.label])
    if len(classes) < 2:
        raise ValueError(f"manifest {path}: found only the classes {classes}; a classification task needs at least 2")
    if task == "multiclass":
        return Labels(task, classes, torch.tensor([t[0] for t in targets], dtype=torch.long), keep)
    multi_hot = torch.zeros(len(targets), len(classes), dtype=torch.long)
    for j, t in enumerate(targets):
        multi_hot[j, t] = 1
    return Labels(task, classes, multi_hot, keep)

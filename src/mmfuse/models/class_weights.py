"""Per-class loss weights (`model.loss.class_weights`) for imbalanced labels.

- null: no weights; the loss is today's unweighted one.
- balanced: from the training split's labels only (validation and test never
  shape the loss). Multiclass, scikit-learn's definition: the weight of class
  k is n / (K * n_k) for n training samples, K classes and n_k samples of
  class k, so a class weighs as much in the loss as any other, and the
  weights average 1 over the samples. Multilabel: `pos_weight` of label k is
  neg_k / pos_k (training samples without / with the label), so positives and
  negatives of each label weigh the same.
- a list of num_classes positive finite numbers, as given.

A class (label) absent from the training split, or a label present in every
training sample, has no balanced weight: that is an error naming it (give
the weights as a list, or fix the split) rather than an infinite or zero
weight that would silently dominate or drop the class.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Sequence

import torch

KEY = "model.loss.class_weights"


def _expected(num_classes: int) -> str:
    return f"expected null, balanced or a list of {num_classes} positive finite numbers (one per class)"


def check_class_weights(value: Any, task: str, num_classes: int) -> list[float] | None:
    """An explicit list (or null) checked against the task and the class count; `balanced` must be resolved first."""
    if value is None:
        return None
    if task == "regression":
        raise ValueError(f"{KEY}={value!r}: a regression task has no classes to weight; expected null")
    if isinstance(value, str):
        if value == "balanced":
            raise ValueError(f"{KEY}=balanced must be resolved from the training labels before the model is built "
                             "(mmfuse.models.build.build_model does it)")
        raise ValueError(f"{KEY}={value!r}: {_expected(num_classes)}")
    values = list(value) if isinstance(value, Sequence) else None
    if values is None or len(values) != num_classes or not all(
            isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{KEY}={value!r}: {_expected(num_classes)}")
    return [float(v) for v in values]


def resolve_class_weights(value: Any, task: str, num_classes: int, training_labels: Callable[[], torch.Tensor],
                          class_names: Sequence[str] | None = None) -> list[float] | None:
    """The weights the loss uses: null, an explicit list (checked), or `balanced` computed from the training labels."""
    if isinstance(value, str) and value == "balanced" and task != "regression":
        weights = balanced(task, num_classes, training_labels(), class_names)
        return check_class_weights(weights, task, num_classes)
    return check_class_weights(value, task, num_classes)


def balanced(task: str, num_classes: int, labels: torch.Tensor,
             class_names: Sequence[str] | None = None) -> list[float]:
    """`balanced` weights of training labels: class indices (multiclass) or a multi-hot (n, K) tensor (multilabel)."""
    names = list(class_names or [])

    def which(ks: torch.Tensor) -> str:
        return ", ".join(repr(names[k]) if k < len(names) else str(k) for k in ks.tolist())

    n = len(labels)
    if task == "multiclass":
        counts = torch.bincount(labels.long().reshape(-1), minlength=num_classes).double()
        absent = torch.nonzero(counts == 0).flatten()
        if len(absent):
            raise ValueError(f"{KEY}=balanced: class(es) {which(absent)} never occur in the training split, so "
                             "they have no balanced weight; give the weights as a list, or a split that trains on "
                             "every class")
        return (n / (num_classes * counts)).tolist()
    positives = labels.double().sum(0)
    negatives = n - positives
    degenerate = torch.nonzero((positives == 0) | (negatives == 0)).flatten()
    if len(degenerate):
        raise ValueError(f"{KEY}=balanced: label(s) {which(degenerate)} are in no training sample or in every one, so "
                         "their pos_weight (negatives / positives) is infinite or 0; give the weights as a list")
    return (negatives / positives).tolist()

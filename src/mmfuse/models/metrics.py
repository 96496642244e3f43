"""torchmetrics collections and losses per task type."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, PearsonCorrCoef
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAccuracy,
    MultilabelAUROC,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)


class SignAccuracy(Metric):
    """Binary accuracy of a regression: share of non-zero targets whose sign the prediction matches.

    The `acc2` of CMU-MOSI/MOSEI papers (MulT's evaluation): samples with
    target 0 are left out; a prediction counts as positive when > 0. NaN when
    no target is non-zero.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds, target = preds.reshape(-1), target.reshape(-1)
        nonzero = target != 0
        self.correct += ((preds[nonzero] > 0) == (target[nonzero] > 0)).sum()
        self.total += nonzero.sum()

    def compute(self) -> torch.Tensor:
        if self.total == 0:
            return torch.tensor(float("nan"))
        return self.correct.float() / self.total


# the metric each task's "best" checkpoint and summary follow, and its direction
MONITOR = {"multiclass": ("acc", "max"), "multilabel": ("f1", "max"), "regression": ("mae", "min")}


def build_metrics(task: str, num_classes: int, full: bool = True) -> MetricCollection:
    """Accuracy, macro-F1, precision, recall, AUROC (or MAE/MSE/corr/acc2 for regression).

    `full=False` keeps only the cheap ones, for per-step training metrics, and skips torchmetrics' input checks
    (a `torch.unique` over the targets every step): the module's own predictions and the data module's
    checked labels are what they are given.
    """
    check = {} if full else {"validate_args": False}
    if task == "multiclass":
        metrics = {"acc": MulticlassAccuracy(num_classes, average="micro", **check),
                   "f1": MulticlassF1Score(num_classes, average="macro", **check)}
        if full:
            metrics |= {
                "precision": MulticlassPrecision(num_classes, average="macro"),
                "recall": MulticlassRecall(num_classes, average="macro"),
                "auroc": MulticlassAUROC(num_classes, average="macro"),
            }
    elif task == "multilabel":
        metrics = {
            "acc": MultilabelAccuracy(num_classes, **check),
            "f1": MultilabelF1Score(num_classes, average="micro", **check),
        }
        if full:
            metrics |= {
                "f1_macro": MultilabelF1Score(num_classes, average="macro"),
                "precision": MultilabelPrecision(num_classes, average="macro"),
                "recall": MultilabelRecall(num_classes, average="macro"),
                "auroc": MultilabelAUROC(num_classes, average="macro"),
            }
    elif task == "regression":
        metrics = {"mae": MeanAbsoluteError(), "mse": MeanSquaredError()}
        if full:
            metrics |= {"corr": PearsonCorrCoef(), "acc2": SignAccuracy()}
    else:
        raise ValueError(f"unknown task {task!r}")
    return MetricCollection(metrics)


def predictions(task: str, scores: torch.Tensor) -> torch.Tensor:
    """What metrics are fed: class probabilities, label probabilities or values."""
    if task == "multiclass":
        return scores.softmax(-1)
    if task == "multilabel":
        return scores.sigmoid()
    return scores.squeeze(-1)


def loss_fn(
    task: str,
    scores: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy, BCE-with-logits or MSE; `class_weights` (models/class_weights.py) are the cross-entropy's
    `weight` (multiclass) or BCE's `pos_weight` (multilabel); None is the unweighted loss of torch's defaults."""
    if task == "multiclass":
        return F.cross_entropy(scores, target, weight=class_weights, label_smoothing=label_smoothing)
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(scores, target.float(), pos_weight=class_weights)
    return F.mse_loss(scores.squeeze(-1), target.float())

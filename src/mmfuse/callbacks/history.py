"""A Lightning callback that keeps run.json current: per-epoch validation metrics."""
from __future__ import annotations

import pytorch_lightning as pl

from mmfuse.runs.folder import RunFolder


def scalars(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


class RecordHistory(pl.Callback):
    """Appends {epoch, step, val/..., train/...} to the record's history after each epoch.

    `on_train_epoch_end` runs after the epoch's validation (val/*) and after the
    module has logged its training-epoch metrics (at the epoch's last batch), so
    the row holds this epoch's values.
    """

    def __init__(self, record: RunFolder):
        self.record = record
        # every scalar of the last finished epoch, kept in checkpoints: a run resumed from the checkpoint of its
        # final epoch trains nothing more, so Lightning has no train/val metrics to hand back after fit
        self.last_epoch_metrics: dict[str, float] = {}

    def state_dict(self) -> dict:
        return {"last_epoch_metrics": dict(self.last_epoch_metrics)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch_metrics = dict(state_dict.get("last_epoch_metrics", {}))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # every process reads the metrics: in DDP the read is a collective reduction
        metrics = scalars(trainer.callback_metrics)
        self.last_epoch_metrics = metrics
        if not trainer.is_global_zero:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row |= {k: v for k, v in metrics.items() if k.startswith(("val/", "train/")) and not k.endswith("_step")}
        self.record.data.setdefault("history", []).append(row)
        self.record.save()

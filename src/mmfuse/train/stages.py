"""Fit and test, with what each leaves in the run record."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig

from mmfuse.callbacks.epoch_timer import EpochTimer
from mmfuse.callbacks.history import RecordHistory, scalars
from mmfuse.runs.folder import read_record
from mmfuse.train.run_life import RunLife

log = logging.getLogger(__name__)


def fit(cfg: DictConfig, run: RunLife, trainer: pl.Trainer, model, datamodule, history: RecordHistory,
        timer: EpochTimer) -> None:
    log.info("Starting training")
    t0 = time.time()
    ckpt_path = str(run.folder.last_ckpt) if run.resume else cfg.get("ckpt_path")
    # a checkpoint from elsewhere is read as weights only (no pickled code) unless trust_checkpoint=true
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path,
                weights_only=True if run.resume else not cfg.get("trust_checkpoint", False))
    run.timing["fit_seconds"] = round(time.time() - t0, 3)
    run.timing["first_step_at"] = timer.first_step_at
    if trainer.world_size > 1:
        # spawn-style DDP: rank 0's process appended the history to run.json; this process's copy lacks it
        run.folder.update(history=read_record(run.folder.run_dir).get("history", []))
    run.metrics.update(history.last_epoch_metrics)  # the final epoch's, also when resumed from it
    run.metrics.update(scalars(trainer.callback_metrics))
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        # spawn-style DDP hands back the best path but not its score: the monitored metric's best is logged as
        # <monitor>_best
        score = ckpt.best_model_score if ckpt.best_model_score is not None else run.metrics.get(f"{ckpt.monitor}_best")
        run.folder.update(
            best={
                "monitor": ckpt.monitor,
                "score": None if score is None else float(score),
                "checkpoint": str(Path(ckpt.best_model_path).resolve()),
            }
        )


def test(run: RunLife, trainer: pl.Trainer, model, datamodule) -> None:
    log.info("Starting testing")
    t0 = time.time()
    ckpt = trainer.checkpoint_callback
    # the path, not "best": Lightning warns that "best" picks the first of several ModelCheckpoints (this one)
    best = ckpt.best_model_path if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
    trainer.test(model=model, datamodule=datamodule, ckpt_path=best, verbose=run.info["sweep_dir"] is None)
    run.timing["test_seconds"] = round(time.time() - t0, 3)
    run.metrics.update({k: v for k, v in scalars(trainer.callback_metrics).items() if k.startswith("test/")})

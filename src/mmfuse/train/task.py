"""The train task, top to bottom: config -> datamodule, model, loggers, callbacks, trainer -> fit, test -> measures."""
from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger

from mmfuse.callbacks.checkpoints import AtomicCheckpointIO, InterruptCheckpoint
from mmfuse.callbacks.divergence import DivergenceGuard
from mmfuse.callbacks.epoch_timer import EpochTimer
from mmfuse.callbacks.history import RecordHistory
from mmfuse.callbacks.resume_state import ResumeState
from mmfuse.models.build import build_model, check_encoder_overrides
from mmfuse.models.frozen import precompute_frozen_embeddings
from mmfuse.plugins import check_plugins
from mmfuse.tracking import startup, wandb_setup
from mmfuse.train.checks import validate_config
from mmfuse.train.components import (
    instantiate_callbacks,
    instantiate_loggers,
    keep_csv_history,
)
from mmfuse.train.job import threads_for_job
from mmfuse.train.measure import measure, robustness_settings
from mmfuse.train.run_life import RunLife
from mmfuse.train.stages import fit, test

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one model as `cfg` says; returns the run record."""
    with RunLife(cfg) as run:
        validate_config(cfg)
        check_plugins(cfg)
        if threads_for_job(cfg):
            torch.set_num_threads(threads_for_job(cfg))
        if cfg.seed is not None:
            pl.seed_everything(cfg.seed, workers=True)
        run.folder.update(environment={"threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()})

        log.info("Instantiating datamodule <%s>", cfg.data._target_)
        datamodule = instantiate(cfg.data)
        # the W&B run needs the data set's name, not its data: it is created in a thread while data and model are built
        loggers = instantiate_loggers(cfg, run.info, datamodule, wandb_id=run.wandb_id)
        wandb_starts = wandb_setup.start_all_in_background(loggers)
        datamodule.setup("fit")
        startup.mark("data")
        check_encoder_overrides(run.info["overrides"], datamodule)
        robust, max_samples = robustness_settings(cfg, datamodule)

        log.info("Instantiating model <%s> with fusion <%s>", cfg.fusion.name, cfg.fusion._target_)
        model = build_model(cfg, datamodule)
        precompute_frozen_embeddings(model, datamodule)
        startup.mark("model")
        if getattr(datamodule, "skipped", None):
            log.warning("Data samples skipped (data.on_error=skip): %s", datamodule.skipped)
            run.folder.update(data_skipped=dict(datamodule.skipped))
        run.folder.update(data=datamodule.describe(), data_fingerprint=datamodule.fingerprint(),
                          params=model.parameter_counts(),
                          # model.loss with class_weights resolved (balanced: the numbers used)
                          loss=model.hparams.loss)
        for csv_logger in (lg for lg in loggers if run.resume and isinstance(lg, CSVLogger)):
            keep_csv_history(csv_logger)
        history, timer = RecordHistory(run.folder), EpochTimer()
        callbacks = [*instantiate_callbacks(cfg, datamodule.task, bool(loggers)), history, DivergenceGuard(),
                     InterruptCheckpoint(run.folder.checkpoints), timer, ResumeState()]
        loggers = wandb_setup.join_starts(loggers, wandb_starts, run.folder)
        startup.mark("wandb")

        log.info("Instantiating trainer <%s>", cfg.trainer._target_)
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                          plugins=[AtomicCheckpointIO()])
        run.folder.update(
            environment={
                **run.record["environment"],
                "processes": trainer.world_size,
                "accelerator": type(trainer.accelerator).__name__,
                "device": str(trainer.strategy.root_device),
                "precision": str(trainer.precision),
            }
        )
        startup.mark("trainer")
        run.timing["startup"] = startup.take()

        fit(cfg, run, trainer, model, datamodule, history, timer)
        if cfg.get("test"):
            test(run, trainer, model, datamodule)
        wandb_setup.summarise(loggers, measure(cfg, run, model, datamodule, timer, robust, max_samples))
        return run.complete()

"""Callbacks and loggers from the config's `callbacks` and `logger` groups, recognised by type."""
from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ProgressBar
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from mmfuse.models.build import is_unimodal
from mmfuse.models.metrics import MONITOR
from mmfuse.tracking import wandb_setup

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig, task: str, has_logger: bool) -> list[pl.Callback]:
    monitor, mode = MONITOR[task]
    callbacks = []
    for _key, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        cb_cfg = OmegaConf.to_container(cb_cfg, resolve=True)
        if cb_cfg.get("monitor") == "auto":
            cb_cfg["monitor"] = f"val/{monitor}"
        if cb_cfg.get("mode") == "auto":
            cb_cfg["mode"] = mode
        kind = get_class(cb_cfg["_target_"])
        if issubclass(kind, LearningRateMonitor) and not has_logger:
            continue  # Lightning refuses a LearningRateMonitor without a logger
        if issubclass(kind, ProgressBar) and not cfg.trainer.get("enable_progress_bar", True):
            continue  # trainer.enable_progress_bar=false wins over the callback
        log.info("Instantiating callback <%s>", cb_cfg["_target_"])
        callbacks.append(instantiate(cb_cfg))
    return callbacks


def keep_csv_history(logger: CSVLogger) -> int:
    """A resumed run appends to its metrics.csv; returns the rows kept.

    Lightning's CSV writer deletes an existing metrics.csv when it starts ("Previous log files in this directory
    will be deleted"), which would lose the epochs before the interruption, and CSVLogger has no append mode
    (Lightning 2.6). The writer is started here, the file put back, and the writer given its columns through its
    public `metrics_keys`, so that its next save appends (or rewrites with any new column added).
    """
    path = Path(logger.log_dir) / ExperimentWriter.NAME_METRICS_FILE
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Previous log files in this directory will be deleted.*")
        writer = logger.experiment  # starts the writer, which deletes the file
    path.write_text(text, encoding="utf-8")
    writer.metrics_keys = list(rows[0]) if rows else []
    return max(len(rows) - 1, 0)


def instantiate_loggers(cfg: DictConfig, info: dict[str, Any], datamodule, wandb_id: str | None = None) -> list:
    loggers = []
    for lg_cfg in (cfg.get("logger") or {}).values():
        if lg_cfg is None or "_target_" not in lg_cfg:
            continue
        extra = {}
        if issubclass(get_class(lg_cfg._target_), WandbLogger):
            extra = wandb_fields(cfg, info, datamodule, lg_cfg.get("group"), wandb_id)
        log.info("Instantiating logger <%s>", lg_cfg._target_)
        # not recursive: the W&B config holds the run's `_target_` keys, which are data here, not objects to build
        loggers.append(instantiate({**OmegaConf.to_container(lg_cfg, resolve=True), **extra}, _recursive_=False,
                                   _convert_="all"))
    return loggers


def wandb_fields(cfg: DictConfig, info: dict[str, Any], datamodule, group: str | None, wandb_id: str | None) -> dict:
    """Group, tags and config that make runs comparable in W&B dashboards; a resumed run continues its W&B run."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if group is None:
        sweep = info.get("sweep_dir")
        group = f"{cfg.experiment_name}-{Path(sweep).name}" if sweep else cfg.experiment_name
    kind = "unimodal" if is_unimodal(cfg.fusion) else "fusion"
    fields = {"group": group, "tags": list(dict.fromkeys([cfg.fusion.get("name"), datamodule.name, kind, *cfg.tags])),
              "config": {**wandb_setup.top_level_choices(info["choices"], resolved), "cfg": resolved}}
    if wandb_id:
        fields.update(id=wandb_id, resume="allow")
    return fields

"""The train task: config -> datamodule, model, callbacks, loggers, trainer -> fit, test -> run record."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from mmfuse.callbacks.checkpoints import AtomicCheckpointIO, InterruptCheckpoint
from mmfuse.callbacks.divergence import Diverged, DivergenceGuard
from mmfuse.callbacks.epoch_timer import EpochTimer
from mmfuse.callbacks.history import RecordHistory, scalars
from mmfuse.callbacks.resume_state import ResumeState
from mmfuse.errors import root_cause
from mmfuse.evaluation import robustness
from mmfuse.evaluation.complexity import complexity
from mmfuse.models.build import build_model, check_encoder_overrides, is_unimodal
from mmfuse.models.frozen import precompute_frozen_embeddings
from mmfuse.models.metrics import MONITOR
from mmfuse.tracking import startup, wandb_setup
from mmfuse.tracking.record import RunRecord, git_state, package_versions, read_record
from mmfuse.training_checks import check_targets

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def hydra_info() -> dict[str, Any]:
    """Choices, overrides and sweep folder of this job (empty when Hydra is not running it)."""
    if not HydraConfig.initialized():
        return {"choices": {}, "overrides": [], "sweep_dir": None}
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "choices": {k: v for k, v in OmegaConf.to_container(hc.runtime.choices).items() if not k.startswith("hydra/")},
        "overrides": list(hc.overrides.task),
        "sweep_dir": str(Path(hc.sweep.dir).resolve()) if multirun else None,
        "job_num": hc.job.num if multirun else None,
    }


def threads_for_job(cfg: DictConfig) -> int | None:
    """`threads` if set; under the joblib launcher, the cores shared evenly among parallel jobs;
    under submitit, the job's `cpus_per_task`."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if HydraConfig.initialized():
        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")).lower():
            cores = os.cpu_count() or 1
            n_jobs = launcher.get("n_jobs") or -1
            parallel = cores if n_jobs < 0 else min(n_jobs, cores)
            return max(1, cores // parallel)
        if "submitit" in str(launcher.get("_target_", "")).lower() and launcher.get("cpus_per_task"):
            return int(launcher.cpus_per_task)
    return None


def _expect(cfg: DictConfig, key: str, kind: type | tuple, allowed: str, ok=lambda v: True, nullable: bool = True) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ValueError(f"{key}={value!r}: expected {allowed}")


def validate_config(cfg: DictConfig) -> None:
    """Values that would only fail (or silently misbehave) deep inside training, named with their key."""
    _expect(cfg, "seed", int, "an integer in [0, 4294967295] or null", lambda v: 0 <= v <= 2**32 - 1)  # numpy's range
    _expect(cfg, "threads", int, "an integer >= 1 or null", lambda v: v >= 1)
    _expect(cfg, "trainer.max_epochs", int, "an integer >= 1 (or -1 for no limit)", lambda v: v >= 1 or v == -1)
    _expect(cfg, "model.optimizer.lr", (int, float), "a number > 0", lambda v: v > 0)
    _expect(cfg, "model.optimizer.weight_decay", (int, float), "a number >= 0", lambda v: v >= 0)
    _expect(cfg, "model.modality_dropout", (int, float), "a number in [0, 1)", lambda v: 0 <= v < 1)
    _expect(cfg, "trainer.gradient_clip_val", (int, float), "a number > 0 or null", lambda v: v > 0)
    _expect(cfg, "data.batch_size", int, "an integer >= 1", lambda v: v >= 1)
    check_targets(cfg)
    check_start_checkpoint(cfg)


def check_start_checkpoint(cfg: DictConfig) -> None:
    """ckpt_path exists and, unless trust_checkpoint=true, holds only weights and plain data (weights_only=True)."""
    path = cfg.get("ckpt_path")
    if not path or cfg.get("resume"):
        return
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    if cfg.get("trust_checkpoint"):
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling refused, truncated, not a checkpoint
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"ckpt_path={path} cannot be loaded as weights only ({first}); if it is a checkpoint whose "
                         "origin you trust, add trust_checkpoint=true") from None


def instantiate_callbacks(cfg: DictConfig, task: str, has_logger: bool) -> list[pl.Callback]:
    monitor, mode = MONITOR[task]
    callbacks = []
    for key, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        cb_cfg = OmegaConf.to_container(cb_cfg, resolve=True)
        if cb_cfg.get("monitor") == "auto":
            cb_cfg["monitor"] = f"val/{monitor}"
        if cb_cfg.get("mode") == "auto":
            cb_cfg["mode"] = mode
        if key == "lr_monitor" and not has_logger:
            continue  # Lightning refuses a LearningRateMonitor without a logger
        if "ProgressBar" in cb_cfg["_target_"] and not cfg.trainer.get("enable_progress_bar", True):
            continue  # trainer.enable_progress_bar=false wins over the callback
        log.info("Instantiating callback <%s>", cb_cfg["_target_"])
        callbacks.append(instantiate(cb_cfg))
    return callbacks


def keep_csv_history(logger: CSVLogger) -> int:
    """A resumed run appends to its metrics.csv; returns the rows kept.

    Lightning's CSV writer deletes an existing metrics.csv when it starts ("Previous log files in this directory
    will be deleted"), which would lose the epochs before the interruption. The writer is started here, the file put
    back, and the writer told its columns, so that its next save appends (or rewrites with any new column added).
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
    for key, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is None or "_target_" not in lg_cfg:
            continue
        lg_cfg = OmegaConf.to_container(lg_cfg, resolve=True)
        if "WandbLogger" in lg_cfg["_target_"]:
            resolved = OmegaConf.to_container(cfg, resolve=True)
            fusion = cfg.fusion.get("name")
            if lg_cfg.get("group") is None:
                sweep = info.get("sweep_dir")
                lg_cfg["group"] = f"{cfg.experiment_name}-{Path(sweep).name}" if sweep else cfg.experiment_name
            kind = "unimodal" if is_unimodal(cfg.fusion) else "fusion"
            lg_cfg["tags"] = list(dict.fromkeys([fusion, datamodule.name, kind, *cfg.tags]))
            lg_cfg["config"] = {**wandb_setup.top_level_choices(info["choices"], resolved), "cfg": resolved}
            if wandb_id:  # a resumed run continues its own W&B run
                lg_cfg.update(id=wandb_id, resume="allow")
        log.info("Instantiating logger <%s>", lg_cfg["_target_"])
        # built directly: the W&B config holds `_target_` keys that instantiate() would try to build
        loggers.append(get_class(lg_cfg.pop("_target_"))(**lg_cfg))
    return loggers


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one model as `cfg` says; returns the run record."""
    info = hydra_info()
    run_dir = Path(cfg.paths.run_dir).resolve()
    resume = bool(cfg.get("resume"))  # continue the run in this folder (lifecycle/resume.py sets it)
    record = RunRecord(run_dir)
    record.acquire(resume=resume)
    started = time.time()
    if resume:
        record.resume()
        info = {**info, "choices": record.data.get("choices") or {}, "overrides": record.data.get("overrides") or [],
                "sweep_dir": record.data.get("sweep_dir")}
    else:
        record.start(
            run_name=cfg.run_name,
            config=OmegaConf.to_container(cfg, resolve=True),
            choices=info["choices"],
            overrides=info["overrides"],
            sweep_dir=info["sweep_dir"],
            metrics={},
            history=[],
            timing={"started": dt.datetime.now().isoformat(timespec="seconds")},
            git=git_state(PROJECT_ROOT),
            versions=package_versions(),
        )
    status, metrics, timing = "failed", {}, {}
    startup.mark("record")
    try:
        validate_config(cfg)
        threads = threads_for_job(cfg)
        if threads:
            torch.set_num_threads(threads)
        if cfg.seed is not None:
            pl.seed_everything(cfg.seed, workers=True)
        record.update(environment={"threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()})

        log.info("Instantiating datamodule <%s>", cfg.data._target_)
        datamodule = instantiate(cfg.data)
        # the W&B run needs the data set's name, not its data: it is created in a thread while data and model are built
        loggers = instantiate_loggers(cfg, info, datamodule,
                                      wandb_id=(record.data.get("wandb") or {}).get("id") if resume else None)
        wandb_starts = {id(lg): wandb_setup.start_in_background(lg) for lg in loggers
                        if type(lg).__name__ == "WandbLogger"}
        datamodule.setup("fit")
        startup.mark("data")
        check_encoder_overrides(info["overrides"], datamodule)
        evaluation = cfg.get("evaluation") or {}
        test_size = len(datamodule.splits["test"]) if "test" in datamodule.splits else None
        max_samples = evaluation.get("max_samples")
        if "batch_size" not in evaluation and max_samples is not None and test_size is not None:
            # a config from before evaluation.batch_size existed capped max_samples silently at the test set's size
            max_samples = min(max_samples, test_size)
        robustness.validate(evaluation.get("severities") or [], evaluation.get("modalities"), list(datamodule.modalities),
                            evaluation.get("robustness", False), f"data set '{datamodule.name}'", max_samples, test_size)
        robust = robustness.enabled(evaluation.get("robustness", False), datamodule.modalities)

        log.info("Instantiating model <%s> with fusion <%s>", cfg.fusion.name, cfg.fusion._target_)
        model = build_model(cfg, datamodule)
        precompute_frozen_embeddings(model, datamodule)
        startup.mark("model")
        if getattr(datamodule, "skipped", None):
            log.warning("Data samples skipped (data.on_error=skip): %s", datamodule.skipped)
            record.update(data_skipped=dict(datamodule.skipped))
        if resume:
            for lg in loggers:
                if isinstance(lg, CSVLogger):
                    keep_csv_history(lg)
        epoch_timer = EpochTimer()
        history = RecordHistory(record)
        callbacks = instantiate_callbacks(cfg, datamodule.task, bool(loggers)) + [
            history, DivergenceGuard(), InterruptCheckpoint(run_dir / "checkpoints"), epoch_timer,
            ResumeState()]
        record.update(
            data=datamodule.describe(),
            data_fingerprint=datamodule.fingerprint(),
            params=model.parameter_counts(),
            loss=model.hparams.loss,  # model.loss with class_weights resolved (balanced: the numbers used)
        )
        for lg in list(loggers):
            if id(lg) in wandb_starts:
                wandb_info = wandb_starts[id(lg)].wait()
                record.update(wandb=wandb_info)
                if wandb_info["status"] != "ok":
                    loggers.remove(lg)
        startup.mark("wandb")

        log.info("Instantiating trainer <%s>", cfg.trainer._target_)
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                          plugins=[AtomicCheckpointIO()])
        record.update(environment={**record.data["environment"], "processes": trainer.world_size,
                                   "accelerator": type(trainer.accelerator).__name__,
                                   "device": str(trainer.strategy.root_device), "precision": str(trainer.precision)})

        startup.mark("trainer")
        timing["startup"] = startup.take()
        log.info("Starting training")
        t0 = time.time()
        ckpt_path = str(run_dir / "checkpoints" / "last.ckpt") if resume else cfg.get("ckpt_path")
        # a checkpoint from elsewhere is read as weights only (no pickled code) unless trust_checkpoint=true
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path,
                    weights_only=True if resume else not cfg.get("trust_checkpoint", False))
        timing["fit_seconds"] = round(time.time() - t0, 3)
        timing["first_step_at"] = epoch_timer.first_step_at
        if trainer.world_size > 1:
            # spawn-style DDP: rank 0's process appended the history to run.json; this process's copy lacks it
            record.update(history=read_record(run_dir).get("history", []))
        metrics.update(history.last_epoch_metrics)  # the final epoch's, also when resumed from it
        metrics.update(scalars(trainer.callback_metrics))
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and getattr(ckpt, "best_model_path", ""):
            # spawn-style DDP hands back the best path but not its score: the monitored metric's best is logged as <monitor>_best
            score = ckpt.best_model_score if ckpt.best_model_score is not None else metrics.get(f"{ckpt.monitor}_best")
            record.update(best={"monitor": ckpt.monitor, "score": None if score is None else float(score),
                                "checkpoint": str(Path(ckpt.best_model_path).resolve())})
        if cfg.get("test"):
            log.info("Starting testing")
            t0 = time.time()
            # the path, not "best": Lightning warns that "best" picks the first of several ModelCheckpoints (this one)
            best = ckpt.best_model_path if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
            trainer.test(model=model, datamodule=datamodule, ckpt_path=best, verbose=info["sweep_dir"] is None)
            timing["test_seconds"] = round(time.time() - t0, 3)
            metrics.update({k: v for k, v in scalars(trainer.callback_metrics).items() if k.startswith("test/")})
        cost = complexity(model, next(iter(datamodule.test_dataloader())), epoch_timer.seconds, epoch_timer.periods)
        record.update(complexity=cost)
        summary = {f"complexity/{k}": v for k, v in {**cost, **record.data["params"]}.items() if not isinstance(v, list)}
        if robust and cfg.get("test"):
            log.info("Evaluating robustness to missing and noisy modalities")
            t0 = time.time()
            rob = robustness.evaluate_robustness(model, datamodule, evaluation.severities, evaluation.get("modalities"),
                                                 evaluation.get("seed", 0), max_samples,
                                                 evaluation.get("batch_size", 512))
            timing["robustness_seconds"] = round(time.time() - t0, 3)
            record.update(robustness=rob)
            summary |= {f"robustness/present/{k}": v for k, v in (rob.get("present_subsets") or {}).items()}
            summary |= {f"robustness/auc/{m}/{c}": a for m, per in rob["auc"].items() for c, a in per.items()}
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.experiment.summary.update(summary)
        status = "completed"
        return record.data
    except Diverged as e:
        status = "diverged"
        record.data["error"] = {"type": "Diverged", "message": str(e), "step": e.step,
                                "last_finite_metrics": (record.data.get("history") or [{}])[-1]}
        raise
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit after a graceful stop
        status = "interrupted"
        raise
    except Exception as e:
        tb_file = run_dir / "error.txt"
        tb_file.write_text(traceback.format_exc())
        cause = root_cause(e)  # Hydra wraps a constructor's error: record what the user reads on the command line
        record.data["error"] = {"type": type(cause).__name__, "traceback_file": str(tb_file),
                                "message": str(cause).splitlines()[0] if str(cause) else ""}
        raise
    finally:
        ended = time.time()
        timing = {**record.data.get("timing", {}), **timing, "ended": dt.datetime.now().isoformat(timespec="seconds"),
                  "ended_at": ended, "wall_seconds": round(ended - started, 3)}
        record.update(status=status, metrics=metrics, timing=timing)
        try:
            wandb_setup.finish(exit_code=0 if status == "completed" else 1)
        finally:  # a second Ctrl-C while W&B finishes still leaves the run folder unlocked
            record.release()
        log.info("Run %s: %s (%s)", status, run_dir, ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("test/")))

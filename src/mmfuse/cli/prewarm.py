"""Hydra callback for parallel sweeps: joblib's workers import torch and Lightning while the parent checks the sweep.

Before a sweep starts, Hydra composes every job's config in the parent to
check it (about 0.35 s a job on 2 cores), and only then hands the jobs to
joblib, whose fresh worker processes each spend seconds importing torch,
torchmetrics and Lightning (and wandb, starting its service) before the first
job can begin. With `hydra/launcher=joblib` this callback starts the workers
first, each on those imports, so the two waits overlap. Hydra's launcher then
reuses the same workers: joblib keeps one executor per set of arguments, and
the callback passes the launcher's own.

`python benchmarks/bench_parallel.py` measures the sweep it belongs to.
"""
from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mmfuse.cli import process
from mmfuse.tracking.wandb_setup import uses_wandb

log = logging.getLogger(__name__)

# the warm-up's pending results; module-level because Hydra pickles its callbacks into every job
_pending: list[Any] = []


def _import_job_modules(wandb: bool = False) -> int:
    """What every job imports, as the command line imports it (process.load_training), and W&B's service started."""
    import os

    process.load_training()
    import mmfuse.models.build  # noqa: F401  (torch, Lightning, torchmetrics, the model zoo)

    if wandb:  # after torch: the two imports would only take turns (one interpreter lock)
        process.skip_launch_import()
        process.prewarm_wandb()
    return os.getpid()


def joblib_arguments(launcher: DictConfig) -> dict[str, Any]:
    """The keyword arguments Hydra's joblib launcher gives joblib.Parallel, made by the launcher's own code."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    kwargs = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items() if k != "_target_"}
    kwargs["backend"] = "loky"  # as the launcher sets it: threads do not work with Hydra
    process_joblib_cfg(kwargs)
    return kwargs


class PrewarmJoblibWorkers(Callback):
    """`hydra/launcher=joblib`: start its workers on their imports before the sweep's configs are checked."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        if "joblib" not in str(launcher.get("_target_", "")).lower():
            return
        try:
            # name the sweep folder first: workers inherit its name from the environment when they start
            str(config.hydra.sweep.dir)
            from joblib import Parallel, delayed, effective_n_jobs

            arguments = joblib_arguments(launcher)
            workers = effective_n_jobs(arguments.get("n_jobs") or -1)
            wandb = uses_wandb(config.get("logger"))
            _pending.append(Parallel(**arguments, return_as="generator_unordered")(
                delayed(_import_job_modules)(wandb) for _ in range(workers)))
        except Exception as e:  # noqa: BLE001 - a warm-up only saves time; the sweep runs without it
            log.debug("joblib workers not started early: %s", e)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        while _pending:
            try:
                list(_pending.pop())  # finished long ago: the jobs ran on the same workers
            except Exception as e:  # noqa: BLE001 - the jobs themselves would have failed and said why
                log.debug("joblib warm-up: %s", e)

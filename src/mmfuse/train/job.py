"""What Hydra says about this job (choices, overrides, sweep folder), and the threads it may use."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


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

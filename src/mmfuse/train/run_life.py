"""The life of one run in its folder, as a context manager: taken, recorded, ended with a status, released.

On entry the run folder is taken (a new run, or the unfinished run `mmfuse train resume=` continues) and its record
started. On exit, whatever happened, the record says how the run ended (`completed`, `failed` with error.txt holding
the traceback, `diverged`, `interrupted`), with its metrics and timing; the W&B run is finished and the folder
released, even on a second Ctrl-C.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmfuse.callbacks.divergence import Diverged
from mmfuse.errors import root_cause
from mmfuse.plugins import plugin_sources
from mmfuse.runs.folder import RunFolder
from mmfuse.runs.provenance import git_state, package_versions
from mmfuse.tracking import startup, wandb_setup
from mmfuse.train.job import hydra_info

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class RunLife:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.info = hydra_info()
        self.folder = RunFolder(Path(cfg.paths.run_dir).resolve())
        self.resume = bool(cfg.get("resume"))  # continue the run in this folder (lifecycle/resume.py sets it)
        self.status = "failed"
        self.metrics: dict[str, float] = {}
        self.timing: dict[str, Any] = {}

    @property
    def record(self) -> dict[str, Any]:
        return self.folder.data

    @property
    def wandb_id(self) -> str | None:
        """The W&B run a resumed run continues."""
        return (self.record.get("wandb") or {}).get("id") if self.resume else None

    def __enter__(self) -> RunLife:
        self.folder.acquire(resume=self.resume)
        self.started = time.time()
        if self.resume:
            self.folder.resume()
            self.info = {**self.info, "choices": self.record.get("choices") or {},
                         "overrides": self.record.get("overrides") or [], "sweep_dir": self.record.get("sweep_dir")}
        else:
            self.folder.start(
                run_name=self.cfg.run_name,
                config=OmegaConf.to_container(self.cfg, resolve=True),
                choices=self.info["choices"],
                overrides=self.info["overrides"],
                sweep_dir=self.info["sweep_dir"],
                metrics={},
                history=[],
                timing={"started": dt.datetime.now().isoformat(timespec="seconds")},
                git=git_state(PROJECT_ROOT),
                versions=package_versions(),
                plugins=plugin_sources(self.cfg),
            )
        startup.mark("record")
        return self

    def complete(self) -> dict[str, Any]:
        self.status = "completed"
        return self.record

    def __exit__(self, kind, error, tb) -> None:
        if isinstance(error, Diverged):
            self.status = "diverged"
            self.record["error"] = {"type": "Diverged", "message": str(error), "step": error.step,
                                    "last_finite_metrics": (self.record.get("history") or [{}])[-1]}
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):  # Lightning turns Ctrl-C into SystemExit
            self.status = "interrupted"
        elif isinstance(error, Exception):
            self.folder.error_txt.write_text("".join(traceback.format_exception(kind, error, tb)))
            cause = root_cause(error)  # Hydra wraps a constructor's error: record what the command line says
            self.record["error"] = {"type": type(cause).__name__, "traceback_file": str(self.folder.error_txt),
                                    "message": str(cause).splitlines()[0] if str(cause) else ""}
        ended = time.time()
        timing = {
            **self.record.get("timing", {}),
            **self.timing,
            "ended": dt.datetime.now().isoformat(timespec="seconds"),
            "ended_at": ended,
            "wall_seconds": round(ended - self.started, 3),
        }
        self.folder.update(status=self.status, metrics=self.metrics, timing=timing)
        try:
            wandb_setup.finish(exit_code=0 if self.status == "completed" else 1)
        finally:  # a second Ctrl-C while W&B finishes still leaves the run folder unlocked
            self.folder.release()
        tests = ", ".join(f"{k}={v:.4f}" for k, v in sorted(self.metrics.items()) if k.startswith("test/"))
        log.info("Run %s: %s (%s)", self.status, self.folder.run_dir, tests)

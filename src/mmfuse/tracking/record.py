"""run.json: the one file that reporting, eval, reproduce and export read.

Schema (top-level keys):
  schema        int, this file's format version
  status        running | completed | failed | interrupted | diverged
  run_dir       absolute path of the run folder
  run_name      e.g. late-s0
  config        the fully resolved config (config.fusion.name = the strategy)
  choices       the config-group choices Hydra made (fusion, data, encoder/image, ...)
  overrides     the command-line overrides of this job
  metrics       flat keys as logged: val/acc_best, test/acc, test/f1, ...
  history       per-epoch validation metrics [{epoch, step, val/...}, ...]
  best          {monitor, score, checkpoint}
  timing        {started, ended, wall_seconds, fit_seconds, test_seconds, first_step_at, ended_at}
  params        parameter counts: total, trainable, encoder/<m>, fusion, head
  loss          model.loss as the model got it: label_smoothing, class_weights (resolved to numbers, or null)
  complexity    flops_per_sample, latency_ms_per_sample, latency_batch_size, train_seconds_per_epoch, peak_rss_mb
  data          {name, task, num_classes, modalities, sizes}
  data_fingerprint  sha256 of the data's parameters and tensors
  git           {commit, dirty}
  versions      {python, torch, pytorch_lightning, hydra, omegaconf, torchmetrics, wandb, numpy}
  environment   {platform, threads, accelerator, device}
  wandb         {mode, id, dir, status} or {status: disabled, reason}
  pid, host     the writing process (a `running` record with a dead pid is stale)
  error         {type, message, traceback_file} when status is failed
  resumed       [{at, previous_status}] once `mmfuse train resume=` continued the run
  reproduced_from  {run_dir, run_name, status} of a `mmfuse reproduce` run
  evals         [{eval_dir, ckpt, overrides, metrics, started}] of `mmfuse eval`
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = 1
RECORD = "run.json"
LOCK = ".lock"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RECORD
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no run record here; is {run_dir} a run folder?") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt run record ({e})") from None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("torch", "pytorch-lightning", "hydra-core", "omegaconf", "torchmetrics", "wandb", "numpy", "torchvision"):
        try:
            out[name.replace("-", "_").replace("_core", "")] = version(name)
        except PackageNotFoundError:
            out[name.replace("-", "_").replace("_core", "")] = None
    return out


class RunRecord:
    """The run.json of one run folder, owned by this process through a lock file."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RECORD
        self.data: dict[str, Any] = {}
        self._locked = False

    def acquire(self, resume: bool = False) -> None:
        """Refuse a folder that already holds a run or another live writer.

        `resume`: the folder must hold an unfinished run whose process is gone; its record is kept.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            existing = read_record(self.run_dir)
            if existing.get("status") == "completed":
                raise ValueError(f"{self.path}: the run is already completed; nothing to resume")
            if existing.get("status") == "running" and pid_alive(existing.get("pid")):
                raise RuntimeError(f"{self.run_dir} is still being trained by process {existing.get('pid')}")
            self.data = existing
        elif self.path.exists():
            raise FileExistsError(f"{self.path} exists: this folder already holds a run; runs are never overwritten")
        lock = self.run_dir / LOCK
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if pid_alive(holder):
                raise RuntimeError(f"{self.run_dir} is being written by process {holder} (lock {lock})") from None
            lock.unlink(missing_ok=True)  # stale lock of a dead process
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        self._locked = True

    def release(self) -> None:
        if self._locked:
            (self.run_dir / LOCK).unlink(missing_ok=True)
            self._locked = False

    def start(self, **fields: Any) -> None:
        self.data = {"schema": SCHEMA, "status": "running", "run_dir": str(self.run_dir.resolve()),
                     "pid": os.getpid(), "host": socket.gethostname(), **fields}
        self.save()

    def resume(self) -> None:
        """Take over the acquired record of an interrupted run: running again, by this process."""
        resumes = [*self.data.get("resumed", []), {"at": dt.datetime.now().isoformat(timespec="seconds"),
                                                    "previous_status": self.data.get("status")}]
        self.update(status="running", pid=os.getpid(), host=socket.gethostname(), resumed=resumes)

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

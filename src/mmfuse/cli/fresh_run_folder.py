"""Hydra callback: a run never starts in a folder that holds another run, before Hydra writes anything there.

Hydra writes its config snapshot (`.hydra/`) into the run folder before the
task starts, so the train task's own refusal of a used folder (a run.json, or
a live writer's lock) came after the snapshot of a finished run had been
overwritten. Folders named by mmfuse are always new; an explicit
`hydra.run.dir=` or `hydra.sweep.dir=` can point at a used one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mmfuse.errors import fail
from mmfuse.runs.folder import LOCK, RECORD, RunFolder


def refuse_used(folder: Path) -> None:
    """Stop (exit 2, one line) if `folder` holds a run record or the lock of a live process."""
    if (folder / RECORD).exists():
        fail(f"{folder / RECORD} exists: this folder already holds a run; runs are never overwritten")
    holder = RunFolder(folder).writer() if folder.is_dir() else None
    if holder is not None:
        fail(f"{folder} is being written by process {holder or 'unknown'} (lock {folder / LOCK})")


class FreshRunFolder(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_used(Path(OmegaConf.select(config, "hydra.run.dir")))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(OmegaConf.select(config, "hydra.sweep.dir"))
        for job in sorted(sweep.glob(f"*/{RECORD}")) if sweep.is_dir() else []:
            fail(f"hydra.sweep.dir={sweep} already holds runs ({job} exists); runs are never overwritten")

"""A finished run's own config, rebuilt from its snapshot alone (never today's conf/).

`.hydra/config.yaml` keeps the interpolations (`${paths.run_dir}` ...), so
pointing `paths.run_dir` at a new folder moves every output with it. Keys
that Hydra or the launch folder resolved (`${hydra:...}`, `${mmfuse_cwd:}`)
are pinned to the values the run recorded in run.json.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mmfuse.errors import UserError
from mmfuse.runs.folder import RECORD, SNAPSHOT, read_record
from mmfuse.tracking.naming import register_resolvers

# resolved against the launch folder or Hydra at run time: the recorded value is the truth
PINNED = ("paths.root_dir", "paths.data_dir", "paths.cache_dir", "run_name")



def read_run(run_dir: Path, need_completed: bool = True) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such folder")
    if not (run_dir / RECORD).is_file():
        raise UserError(f"{run_dir} is not a run folder (no {RECORD})")
    try:
        record = read_record(run_dir)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not (run_dir / SNAPSHOT).is_file():
        raise UserError(f"{run_dir}: no config snapshot {SNAPSHOT}; cannot rebuild the run's config")
    if need_completed and record.get("status") != "completed":
        raise UserError(f"{run_dir}: run status is {record.get('status')!r}, not 'completed'; "
                             "only a completed run can be reproduced")
    return record


def run_config(run_dir: Path, record: dict[str, Any], new_run_dir: Path | None = None) -> DictConfig:
    """The task config of the run in `run_dir`, its outputs redirected to `new_run_dir` (default: the run's own)."""
    register_resolvers()
    run_dir = Path(run_dir)
    try:
        cfg = OmegaConf.load(run_dir / SNAPSHOT)
    except Exception as e:  # noqa: BLE001 - any parse failure is the same mistake to the user
        raise UserError(f"{run_dir / SNAPSHOT}: unreadable config snapshot ({str(e).splitlines()[0]})") from None
    recorded = OmegaConf.create(record.get("config") or {})
    target = Path(new_run_dir or run_dir).resolve()
    with open_dict(cfg):
        for key in PINNED:
            value = OmegaConf.select(recorded, key, default=None)
            if value is not None:
                OmegaConf.update(cfg, key, value, force_add=True)
        cfg.paths.run_dir = str(target)
        cfg.paths.output_dir = str(target.parent)
        if cfg.get("threads") is None and (record.get("environment") or {}).get("threads"):
            # the thread count changes float sums; the recorded one is the run's environment
            cfg.threads = int(record["environment"]["threads"])
    return cfg


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """`key=value` overrides of existing keys (`+key=value` adds one), values parsed as on Hydra's command line."""
    for o in overrides:
        if "=" not in o:
            raise UserError(f"override {o!r} is not key=value")
        key, value = o.split("=", 1)
        add = key.startswith("+")
        key = key.lstrip("+")
        if not add and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise UserError(f"override {o!r}: the run's config has no key {key!r} (use +{key}=... to add one)")
        parsed = OmegaConf.from_dotlist([f"v={value}"]).v
        with open_dict(cfg):
            OmegaConf.update(cfg, key, parsed, force_add=True)
    return cfg


def passing(items: list, check, skipped) -> list:
    """The items `check` accepts; each it refuses (UserError) is said on stderr as `skipped(item, error)`."""
    kept = []
    for item in items:
        try:
            check(item)
            kept.append(item)
        except UserError as e:
            print(skipped(item, e), file=sys.stderr)
    return kept


def stamp() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def writable(folder: Path) -> bool:
    """The nearest existing ancestor of `folder` accepts new entries."""
    folder = Path(folder)
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def clear_hydra() -> None:
    """train() asks HydraConfig for choices and sweep folder; a reproduction or eval runs outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None

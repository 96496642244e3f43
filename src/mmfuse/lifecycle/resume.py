"""`mmfuse train resume=RUN_DIR`: continue an interrupted run from checkpoints/last.ckpt in the same folder.

The run's own config snapshot is used (never today's conf/); extra
`key=value` overrides are allowed (e.g. trainer.max_epochs=20 to train
longer). A sweep folder resumes every job that did not complete and skips
the completed ones. The W&B run continues under the id run.json recorded.

A resumed run ends with the metrics an uninterrupted run would have had:
Lightning restores weights, optimizer, LR schedule and callbacks from the
checkpoint; `mmfuse.callbacks.resume_state.ResumeState` adds what Lightning
leaves out (the global torch RNG, the training sampler's shuffling
generator) and the module keeps its best-so-far metric in its checkpoints.
Its run.json history and its CSV logs are cut back to the checkpoint first, so
that what the killed run logged after it is logged once, by the resumed run.
Exit status: 0 resumed and completed, 1 a resumed run failed, 2 bad input.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from mmfuse.errors import UserError, report
from mmfuse.lifecycle.snapshot import (
    apply_overrides,
    clear_hydra,
    passing,
    read_run,
    run_config,
)
from mmfuse.runs.folder import RECORD, RunFolder, pid_alive

PROG = "mmfuse train resume"


def checkpoint_position(path: Path) -> tuple[int, int]:
    """(epoch, step) of a Lightning checkpoint: the step is the one its loggers stamp on rows (batches that stepped)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        loop = (ckpt.get("loops") or {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
        return int(ckpt["epoch"]), int(loop.get("_batches_that_stepped", ckpt["global_step"]))
    except Exception as e:  # noqa: BLE001 - truncated file, not a checkpoint, missing key: one message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(
            f"{path}: cannot resume from this checkpoint (corrupt or not a Lightning checkpoint): {first}"
        ) from None


def checkpoint_epoch(path: Path) -> int:
    return checkpoint_position(path)[0]


def cut_metrics_csv(path: Path, epoch: int, step: int) -> int:
    """Cut a CSV log back to what the checkpoint holds; returns the rows dropped.

    The killed run went on logging after its last checkpoint (steps of the next epoch, or the test rows after the
    final epoch); the resumed run logs those again from the checkpoint on, so they would appear twice. Kept: rows of
    an epoch up to the checkpoint's (rows without an epoch, e.g. the learning rate: steps before the checkpoint's).
    A last line the kill cut short (no line end, or too few cells) is dropped too. The kept lines are not rewritten,
    so their numbers stay exactly as they were logged.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8", newline="") as f:  # line ends as written (csv writes \r\n)
        text = f.read()
    if not text:
        return 0
    header, *lines = text.splitlines(keepends=True)
    columns = next(csv.reader([header]))
    kept = []
    for line in lines:
        cells = next(csv.reader([line]), [])
        if not line.endswith("\n") or len(cells) != len(columns):
            continue
        row = dict(zip(columns, cells))
        if row.get("epoch"):
            keep = int(float(row["epoch"])) <= epoch
        else:
            keep = int(float(row["step"])) < step
        if keep:
            kept.append(line)
    if len(kept) < len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(header + "".join(kept))
        os.replace(tmp, path)
    return len(lines) - len(kept)


def csv_logs(cfg) -> list[Path]:
    """The metrics.csv of every CSVLogger in the run's config."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    paths = []
    for lg_cfg in (cfg.get("logger") or {}).values():
        if lg_cfg is None or "_target_" not in lg_cfg:
            continue
        kwargs = OmegaConf.to_container(lg_cfg, resolve=True)
        cls = get_class(kwargs.pop("_target_"))
        if issubclass(cls, CSVLogger):
            paths.append(Path(cls(**kwargs).log_dir) / ExperimentWriter.NAME_METRICS_FILE)
    return paths


def check_resumable(run_dir: Path) -> tuple[dict[str, Any], Path]:
    record = read_run(run_dir, need_completed=False)
    status = record.get("status")
    if status == "completed":
        raise UserError(f"{run_dir}: the run is already completed; nothing to resume")
    if status == "running" and pid_alive(record.get("pid")):
        raise UserError(
            f"{run_dir} is still being trained by process {record.get('pid')}; "
            "stop it first (a live run is never resumed twice)"
        )
    last = RunFolder(run_dir).last_ckpt
    if not last.is_file():
        raise UserError(
            f"{run_dir}: no checkpoints/last.ckpt to resume from (the run stopped before its first "
            "checkpoint, or was trained without checkpoints); train it again"
        )
    return record, last


def prepare(run_dir: Path, overrides: list[str]):
    """The run's config set to resume, with the record's history cut back to the checkpoint's epoch."""
    record, last = check_resumable(run_dir)
    epoch = checkpoint_epoch(last)
    cfg = apply_overrides(run_config(run_dir, record), overrides)
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.resume = str(run_dir)
    kept = [row for row in record.get("history") or [] if row.get("epoch", -1) <= epoch]
    return cfg, {**record, "history": kept}


def resume_one(run_dir: Path, overrides: list[str], train: Callable[[Any], dict]) -> bool:
    """Resume one run with `train` (mmfuse.train.train); False if it failed (train() recorded why in run.json)."""
    cfg, record = prepare(run_dir, overrides)
    with RunFolder(run_dir).editing() as current:
        current["history"] = record["history"]
    epoch, step = checkpoint_position(RunFolder(run_dir).last_ckpt)
    for path in csv_logs(cfg):
        cut_metrics_csv(path, epoch, step)
    clear_hydra()
    try:
        train(cfg)
        return True
    except Exception as e:  # noqa: BLE001 - recorded in run.json by train()
        report(f"{PROG} [{run_dir}]", e)
        return False


def parse(argv: list[str]) -> tuple[Path, list[str]]:
    targets = [a for a in argv if a.startswith("resume=")]
    rest = [a for a in argv if not a.startswith("resume=")]
    if len(targets) != 1 or not targets[0].split("=", 1)[1]:
        raise UserError("give one run or sweep folder: mmfuse train resume=RUN_DIR [key=value ...]")
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in rest):
        raise UserError(f"resume takes only key=value overrides, not {[a for a in rest if a.startswith('-')]}")
    return Path(targets[0].split("=", 1)[1]).resolve(), rest


def resume(path: Path, overrides: list[str], train: Callable[[Any], dict]) -> int:
    """Resume a run, or every job of a sweep that did not complete; the exit status (0 all completed, 1 one failed)."""
    if not path.exists():
        raise UserError(f"resume={path}: no such folder")
    if (path / RECORD).is_file():
        return 0 if resume_one(path, overrides, train) else 1
    jobs = sorted(p for p in path.iterdir() if (p / RECORD).is_file())
    if not jobs:
        raise UserError(
            f"resume={path} is neither a run folder nor a sweep folder (no {RECORD} in it or its job folders)"
        )
    todo = passing(jobs, check_resumable, lambda job, e: f"{PROG}: skipping {job.name}: {e}")
    if not todo:
        raise UserError(f"sweep {path}: no job to resume")
    failed = [job.name for job in todo if not resume_one(job, overrides, train)]
    if failed:
        print(f"{PROG}: {len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0

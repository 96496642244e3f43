"""`mmfuse eval RUN_DIR`: test a run's best (or last) checkpoint with the run's own config, overrides allowed.

Writes <run>/eval/<date>_<time>_<microseconds>/results.json (+ the config it
used), appends a summary to run.json's `evals` list, and logs a W&B run
(job_type=eval, the training run's group) when the run logged to W&B.
Exit status: 0 evaluated, 2 bad input (nothing written).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from mmfuse.errors import UserError
from mmfuse.lifecycle.snapshot import (
    apply_overrides,
    clear_hydra,
    read_run,
    run_config,
    stamp,
)
from mmfuse.runs.folder import RunFolder, pid_alive

PROG = "mmfuse eval"
log = logging.getLogger(__name__)


def checkpoint_path(run_dir: Path, which: str) -> Path:
    folder = RunFolder(run_dir)
    path = folder.best_ckpt if which == "best" else folder.last_ckpt
    if not path.is_file():
        raise UserError(f"{run_dir}: no {which} checkpoint ({path.relative_to(run_dir)} is missing; "
                             "was the run trained without checkpoints?)")
    return path


def load_model(cfg, path: Path, trust: bool = False):
    """The project's own LightningModule from its checkpoint.

    Loaded with `weights_only=True` (tensors and plain containers only, no
    code runs) unless `trust`: --trust-checkpoint, for checkpoints whose
    origin the user vouches for.
    """
    # deferred (here and below): torch and Lightning, not needed for `mmfuse eval --help` or a bad path
    from mmfuse.models.build import is_unimodal
    from mmfuse.models.fusion_module import FusionModule, UnimodalModule

    module_cls = UnimodalModule if is_unimodal(cfg.fusion) else FusionModule
    try:
        model = module_cls.load_from_checkpoint(path, map_location="cpu", weights_only=not trust)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle error, wrong keys: all one message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        hint = "" if trust else "; if it holds more than weights and you trust its origin, pass --trust-checkpoint"
        raise UserError(
            f"{path}: cannot load checkpoint (corrupt or not a checkpoint of this run): {first}{hint}"
        ) from None
    model.eval()
    return model


def wandb_group(cfg, record: dict[str, Any]) -> str:
    group = (cfg.logger.get("wandb") or {}).get("group")
    if group:
        return str(group)
    sweep = record.get("sweep_dir")
    return f"{cfg.experiment_name}-{Path(sweep).name}" if sweep else str(cfg.experiment_name)


def log_wandb(cfg, record: dict[str, Any], eval_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """A W&B run of the evaluation; a W&B failure is a warning, never a failed eval."""
    try:
        import wandb

        wb = cfg.logger.wandb
        run = wandb.init(
            project=wb.get("project") or "mmfuse",
            entity=wb.get("entity"),
            group=wandb_group(cfg, record),
            job_type="eval",
            name=f"{record.get('run_name', 'run')}-eval",
            dir=str(eval_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
            tags=["eval", str(cfg.fusion.get("name"))],
            config={
                "run_dir": record.get("run_dir"),
                "ckpt": results["ckpt"],
                "overrides": results["overrides"],
                "train_wandb_id": (record.get("wandb") or {}).get("id"),
            },
            reinit="finish_previous",
        )
        run.log(results["metrics"])
        run.summary.update(results["metrics"])
        info = {"status": "ok", "id": run.id, "mode": getattr(run.settings, "mode", None)}
        run.finish()
        return info
    except Exception as e:  # noqa: BLE001
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        print(f"{PROG}: warning: W&B logging failed, results are on disk: {reason}", file=sys.stderr)
        return {"status": "disabled", "reason": reason}


def evaluate(
    run_dir: Path, ckpt: str = "best", overrides: list[str] | None = None, use_wandb: bool = True, trust: bool = False
) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mmfuse.callbacks.history import scalars
    from mmfuse.models.frozen import precompute_frozen_embeddings

    run_dir = Path(run_dir).resolve()
    record = read_run(run_dir, need_completed=False)
    if record.get("status") == "running" and pid_alive(record.get("pid")):
        raise UserError(f"{run_dir} is still being trained by process {record.get('pid')}; evaluate it when it ends")
    overrides = list(overrides or [])
    cfg = apply_overrides(run_config(run_dir, record), overrides)
    path = checkpoint_path(run_dir, ckpt)
    model = load_model(cfg, path, trust)
    clear_hydra()

    started = time.time()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    try:
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")  # as in training: normalisation and vocabularies come from the training split
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"data: cannot build the data set ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    lacking = [m for m in model.modality_names if m not in datamodule.modalities]
    if lacking:
        raise UserError(
            f"the model needs modalities {lacking}, which data set '{datamodule.name}' lacks "
            f"(it has {list(datamodule.modalities)})"
        )
    precompute_frozen_embeddings(model, datamodule)

    eval_dir = run_dir / "eval" / stamp()
    eval_dir.mkdir(parents=True)
    OmegaConf.save(cfg, eval_dir / "config.yaml")
    trainer = instantiate(
        cfg.trainer,
        callbacks=[],
        logger=False,
        default_root_dir=str(eval_dir),
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.test(model=model, datamodule=datamodule, verbose=False)
    metrics = {k: v for k, v in scalars(trainer.callback_metrics).items() if k.startswith("test/")}
    results = {
        "run_dir": str(run_dir),
        "ckpt": ckpt,
        "checkpoint": str(path),
        "overrides": overrides,
        "metrics": metrics,
        "data_fingerprint": datamodule.fingerprint(),
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3),
        "eval_dir": str(eval_dir),
    }
    if use_wandb and "wandb" in (cfg.get("logger") or {}) and cfg.logger.wandb is not None:
        results["wandb"] = log_wandb(cfg, record, eval_dir, results)
    folder = RunFolder(run_dir)
    folder.write_file(eval_dir / "results.json", results)
    with folder.editing() as current:  # read under the lock: another eval may have appended meanwhile
        current.setdefault("evals", []).append(
            {k: results[k] for k in ("eval_dir", "ckpt", "overrides", "metrics", "started")}
        )
    return results


def print_results(results: dict[str, Any], recorded: dict[str, float]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"eval ({results['ckpt']} checkpoint{''.join(', ' + o for o in results['overrides'][:1])}"
        f"{''.join(' ' + o for o in results['overrides'][1:])})",
        title_justify="left",
        caption=f"written to {results['eval_dir']}",
        caption_justify="left",
    )
    for col in ("metric", "eval", "recorded at training", "difference"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for k, v in sorted(results["metrics"].items()):
        r = recorded.get(k)
        table.add_row(Text(k), f"{v:.6g}", "—" if r is None else f"{r:.6g}", "—" if r is None else f"{v - r:.3g}")
    # deferred: the terminal tables import scipy (1.5 s); --help stays instant
    from mmfuse.reporting.terminal import console

    console().print(table)

"""W&B: offline first, one run per job, grouped and tagged for dashboards; never takes a run down."""
from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

# best-so-far summaries W&B keeps per run, for dashboards that compare strategies
SUMMARIES = {"val/acc": "max", "val/f1": "max", "val/auroc": "max", "val/loss": "min", "val/mae": "min"}


def top_level_choices(choices: dict[str, str], cfg: dict[str, Any]) -> dict[str, Any]:
    """Config keys W&B's group-by and parallel-coordinates views use without editing."""
    out = {k.replace("/", "."): v for k, v in choices.items() if not k.startswith("hydra") and v is not None}
    out["fusion"] = cfg.get("fusion", {}).get("name", out.get("fusion"))
    if cfg.get("fusion", {}).get("modality"):
        out["unimodal_modality"] = cfg["fusion"]["modality"]
    out["seed"] = cfg.get("seed")
    return out


def start_experiment(logger, record) -> dict[str, Any]:
    """Create the W&B run now (so failures surface before training) and set summaries.

    Returns what the run record should say about W&B; on failure, the caller
    drops the logger and the run goes on without it.
    """
    try:
        exp = logger.experiment
        for key, summary in SUMMARIES.items():
            exp.define_metric(key, summary=summary)
        return {"status": "ok", "mode": getattr(exp.settings, "mode", None), "id": exp.id, "dir": str(getattr(exp, "dir", ""))}
    except Exception as e:  # a logger must never take a run down
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        log.warning("W&B disabled for this run: %s", reason)
        return {"status": "disabled", "reason": reason}


def finish(exit_code: int) -> None:
    wandb = sys.modules.get("wandb")  # not imported: no run was started (importing it here would cost ~1 s a job)
    if wandb is None:
        return
    try:
        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
    except Exception as e:  # noqa: BLE001 - finishing must not mask the run's own outcome
        log.warning("W&B finish failed: %s", e)

"""W&B: offline first, one run per job, grouped and tagged for dashboards; never takes a run down.

Its start costs seconds (importing wandb, starting its service process,
creating the run), none of which the datamodule or the model needs, so
`start_in_background` creates the run in a thread while they are built; a
parallel sweep's workers prewarm (import wandb, start its service: mmfuse.cli.process) while
the sweep's configs are checked. The run, its config, summaries and files are
those of a start in line.
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

# best-so-far summaries W&B keeps per run, for dashboards that compare strategies
SUMMARIES = {"val/acc": "max", "val/f1": "max", "val/auroc": "max", "val/loss": "min", "val/mae": "min"}
# a start still under way when the run ends is waited for this long before the run ends without it
FINISH_WAIT_SECONDS = 60.0

_pending: list[BackgroundStart] = []  # starts under way, for finish()
# run with wandb imported, before a run starts: process-level tweaks registered by the command line
# (mmfuse.cli.process.skip_launch_import); empty in a notebook or a test, where wandb.init runs as W&B wrote it
BEFORE_START: list[Callable[[], None]] = []


def top_level_choices(choices: dict[str, str], cfg: dict[str, Any]) -> dict[str, Any]:
    """Config keys W&B's group-by and parallel-coordinates views use without editing."""
    out = {k.replace("/", "."): v for k, v in choices.items() if not k.startswith("hydra") and v is not None}
    out["fusion"] = cfg.get("fusion", {}).get("name", out.get("fusion"))
    if cfg.get("fusion", {}).get("modality"):
        out["unimodal_modality"] = cfg["fusion"]["modality"]
    out["seed"] = cfg.get("seed")
    return out


def uses_wandb(logger_cfg) -> bool:
    """Whether the `logger` config group holds a W&B logger."""
    return any(hasattr(c, "get") and "WandbLogger" in str(c.get("_target_", "")) for c in (logger_cfg or {}).values())


def start_experiment(logger, record=None) -> dict[str, Any]:
    """Create the W&B run now (so failures surface before training) and set summaries.

    Returns what the run record should say about W&B; on failure, the caller
    drops the logger and the run goes on without it.
    """
    try:
        if BEFORE_START:
            import wandb  # noqa: F401  (the import the logger would make)

            for hook in BEFORE_START:
                hook()
        exp = logger.experiment
        for key, summary in SUMMARIES.items():
            exp.define_metric(key, summary=summary)
        return {
            "status": "ok",
            "mode": getattr(exp.settings, "mode", None),
            "id": exp.id,
            "dir": str(getattr(exp, "dir", "")),
        }
    except Exception as e:  # noqa: BLE001 - a logger must never take a run down
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        log.warning("W&B disabled for this run: %s", reason)
        return {"status": "disabled", "reason": reason}


class BackgroundStart:
    """`start_experiment` in a thread: the W&B run is created while the caller builds the model."""

    def __init__(self, logger):
        self.logger = logger
        self.result: dict[str, Any] | None = None
        # daemon: a start that hangs cannot keep the process alive after the run has ended
        self.thread = threading.Thread(target=self._run, name="mmfuse-wandb-start", daemon=True)
        _pending.append(self)
        self.thread.start()

    def _run(self) -> None:
        self.result = start_experiment(self.logger)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """What start_experiment returned; a start still under way after `timeout` counts as failed."""
        self.thread.join(timeout)
        if self in _pending and not self.thread.is_alive():
            _pending.remove(self)
        if self.result is None:
            return {"status": "disabled", "reason": f"W&B did not start within {timeout} s"}
        return self.result


def start_in_background(logger) -> BackgroundStart:
    return BackgroundStart(logger)


def start_all_in_background(loggers: list) -> dict[int, BackgroundStart]:
    """A background start for each W&B logger, by id(logger)."""
    from pytorch_lightning.loggers import WandbLogger

    return {id(lg): start_in_background(lg) for lg in loggers if isinstance(lg, WandbLogger)}


def join_starts(loggers: list, starts: dict[int, BackgroundStart], folder) -> list:
    """The loggers whose start succeeded (a W&B logger that failed to start is dropped); the run record (`folder`,
    a RunFolder) says how each W&B start went."""
    kept = []
    for lg in loggers:
        if id(lg) in starts:
            info = starts[id(lg)].wait()
            folder.update(wandb=info)
            if info["status"] != "ok":
                continue
        kept.append(lg)
    return kept


def summarise(loggers: list, summary: dict[str, Any]) -> None:
    """Set end-of-run summaries (complexity, robustness) on each W&B run."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.summary.update(summary)


def finish(exit_code: int) -> None:
    """End this job's W&B run, if one was started (also one still starting: it is waited for, within limits)."""
    while _pending:
        _pending[0].wait(FINISH_WAIT_SECONDS)
        if _pending and _pending[0].thread.is_alive():
            log.warning("W&B start still under way after %.0f s; the run ends without it", FINISH_WAIT_SECONDS)
            _pending.clear()
    wandb = sys.modules.get("wandb")  # not imported: no run was started (importing it here would cost ~1 s a job)
    if wandb is None:
        return
    try:
        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
    except Exception as e:  # noqa: BLE001 - finishing must not mask the run's own outcome
        log.warning("W&B finish failed: %s", e)

"""`mmfuse compare --log-wandb`: the comparison as a W&B run in the sweep's group (job_type=compare).

Offline unless WANDB_MODE=online, written under the comparison folder, so
that `wandb sync <comparison>/wandb/offline-run-*` puts the summary table
and the plots on the dashboard next to the sweep's training runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mmfuse.reporting.comparison import Comparison
from mmfuse.tracking.wandb_offline import read_offline_run


def recorded_group(runs: pd.DataFrame) -> str | None:
    """The group W&B holds for the first run that has an offline W&B run (what `wandb sync` uploads)."""

    for files_dir in runs.get("wandb_dir", pd.Series(dtype=object)).dropna():
        run_folder = Path(files_dir).parent  # <run>/wandb/offline-run-*/files
        try:
            return read_offline_run(run_folder).get("group") or None
        except Exception:  # noqa: BLE001 - an unreadable offline run: fall back to recomputing the group
            continue
    return None


def sweep_group(runs: pd.DataFrame) -> tuple[str | None, list[str]]:
    """(the group to log into, every group the runs were recomputed to belong to)."""
    recomputed = list(dict.fromkeys(runs["wandb_group"].dropna())) if "wandb_group" in runs else []
    return recorded_group(runs) or (recomputed[0] if recomputed else None), recomputed


def first_value(runs: pd.DataFrame, column: str, default: str | None) -> str | None:
    values = runs[column].dropna() if column in runs else pd.Series(dtype=object)
    return str(values.iloc[0]) if len(values) else default


def wandb_mode() -> str:
    mode = os.environ.get("WANDB_MODE", "offline")
    return mode if mode in ("online", "disabled") else "offline"


def table(df: pd.DataFrame):
    import wandb

    clean = df.astype(object).where(df.notna(), None)  # W&B tables want None, not NaN, in text columns
    return wandb.Table(dataframe=clean)


def log_comparison(comparisons: list[Comparison], runs: pd.DataFrame, summary: pd.DataFrame, out: Path,
                   context: dict) -> tuple[Path | None, str | None]:
    """Log the summary table, the per-metric details and the plots; returns (offline run folder, group)."""
    import wandb

    group, all_groups = sweep_group(runs)
    run = wandb.init(
        project=first_value(runs, "cfg.logger.wandb.project", "mmfuse"),
        entity=first_value(runs, "cfg.logger.wandb.entity", None),
        group=group, job_type="compare", name=f"compare-{Path(context['paths'][0]).name}",
        tags=["compare", *[c.data_name for c in comparisons]], dir=str(out), mode=wandb_mode(),
        config={"paths": [str(p) for p in context["paths"]], "grouped_by": [c.grouped_by for c in comparisons],
                "n_runs": context["n_runs"], "groups_of_runs": all_groups},
        settings=wandb.Settings(silent=True),
    )
    logged = {"comparison/summary": table(summary)}
    for c in comparisons:
        prefix = f"{c.data_name}/" if len(comparisons) > 1 else ""
        logged[f"comparison/{prefix}details"] = table(c.detail_table())
        logged.update({f"plots/{prefix}{p.stem}": wandb.Image(str(p), caption=p.name) for p in c.plots})
        best = c.stats[c.stats["best"].astype(bool)]
        for _, row in best.iterrows():
            run.summary[f"best/{prefix}{row['metric']}"] = row["group"]
            run.summary[f"best/{prefix}{row['metric']} mean"] = row["mean"]
    run.log(logged)
    folder = Path(run.dir).parent if wandb_mode() != "disabled" else None
    run.finish()
    return folder, group

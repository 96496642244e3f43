"""`mmfuse compare`: group runs by what varies (not the seed), mean ± std over seeds, tests, plots, a report.

Reads only run.json and .hydra/ of each run folder; never training code.
Exit status: 0 compared, 1 nothing could be compared (no completed run) or
W&B logging failed, 2 bad arguments or no runs found.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import pandas as pd

from mmfuse.errors import UserError
from mmfuse.reporting import html_report, markdown, robustness, terminal
from mmfuse.reporting.comparison import ROBUSTNESS_TITLE, Comparison, compare_data_set, robustness_caption
from mmfuse.reporting.plots import group_colours, make_plots, slug
from mmfuse.reporting.runs import (
    COMPARISON,
    expand,
    find_run_dirs,
    latest_sweep,
    load_runs,
    resolve_key,
)
from mmfuse.reporting.tables import failure_table

PROG = "mmfuse compare"



def input_paths(args: argparse.Namespace) -> list[Path]:
    """The paths to read: those given (each must exist or match), else the latest sweep."""
    if not args.paths:
        latest = latest_sweep(args.outputs)
        if latest is None:
            raise UserError(f"no sweeps with runs under {Path(args.outputs) / 'sweeps'}; pass sweep or run folders "
                               "(or --outputs to look elsewhere)")
        return [latest]
    missing = [p for p in args.paths if not expand(p)]
    for p in missing:
        warn(f"{p}: no such file or folder, and no glob match")
    found = [Path(p) for p in args.paths if p not in missing]
    if not found:
        raise UserError("none of the given paths exist")
    return found


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def read_runs(paths: list[Path]) -> pd.DataFrame:
    for p in paths:
        if not find_run_dirs([p]):
            warn(f"{p}: no runs here (no run.json below it)")
    runs = load_runs(paths)
    if runs.empty:
        raise UserError(f"no runs (no run.json) under {', '.join(map(str, paths))}")
    return runs


def group_keys(done: pd.DataFrame, by: list[str] | None) -> list[str] | None:
    if by is None:
        return None
    resolved = {key: resolve_key(done, key) for key in by}
    unknown = [k for k, col in resolved.items() if col is None]
    if unknown:
        raise UserError(f"--by {' '.join(unknown)}: no such config key or choice in these runs "
                           "(try a config key like fusion.name or a group like fusion)")
    return list(resolved.values())


def compare(done: pd.DataFrame, by: list[str] | None, metrics: list[str] | None,
            correction: str = "holm") -> list[Comparison]:
    """One comparison per data set: runs of different data sets are never averaged together."""
    data_names = done["data_name"].fillna("unknown").astype(str)
    keys = group_keys(done, by)
    return [compare_data_set(name, done[data_names == name], keys, metrics, correction)
            for name in sorted(data_names.unique())]


def output_folder(args: argparse.Namespace, paths: list[Path]) -> Path:
    if args.out:
        return Path(args.out)
    matches = expand(paths[0])  # a glob that names one folder stands for that folder
    first = matches[0] if len(matches) == 1 else paths[0]
    return (first if first.is_dir() else first.parent) / COMPARISON


def write_plots(comparisons: list[Comparison], out: Path) -> None:
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # plots of an earlier comparison could describe other runs
        old.unlink()
    for c in comparisons:
        prefix = f"{slug(c.data_name)}_" if len(comparisons) > 1 else ""
        c.plots = make_plots(c.runs, c.stats, c.history, c.headline, folder, prefix)
        c.plots += robustness_plots(c, folder, prefix)


def robustness_plots(c: Comparison, folder: Path, prefix: str) -> list[Path]:
    """Metric vs noise severity per modality, the missing-modality heat map, and metric vs cost."""

    colours = group_colours(list(c.runs["group"].unique()))
    metric = c.robustness_metric
    paths = robustness.noise_plots(c.curves, metric, colours, folder, prefix) if not c.curves.empty else []
    if not c.per_run.empty and "clean" in c.per_run:
        paths.append(robustness.missing_heatmap(c.per_run, metric, folder, prefix))
    test_metric = next((m for m in (f"test/{metric}", *c.headline) if m in c.runs), None)
    if test_metric and not c.per_run.empty:
        paths.append(robustness.cost_scatter(c.per_run, c.runs, test_metric, colours, folder, prefix))
    return [p for p in paths if p is not None]


def summary_csv(comparisons: list[Comparison]) -> pd.DataFrame:
    return pd.concat([c.summary.assign(data=c.data_name)[["data", *c.summary.columns]] for c in comparisons],
                     ignore_index=True)


def runs_csv(runs: pd.DataFrame, comparisons: list[Comparison]) -> pd.DataFrame:
    groups = pd.concat([c.runs[["run_dir", "group"]] for c in comparisons])
    table = runs.merge(groups, on="run_dir", how="left")
    first = [c for c in ("run_dir", "run_name", "status", "error", "data_name", "group", "seed", "params",
                         "fit_seconds", "wall_seconds", "command") if c in table]
    return table[first + [c for c in table.columns if c not in first]]


def write_files(comparisons: list[Comparison], runs: pd.DataFrame, failures: pd.DataFrame, out: Path,
                context: dict) -> pd.DataFrame:
    out.mkdir(parents=True, exist_ok=True)
    write_plots(comparisons, out)
    summary = summary_csv(comparisons)
    summary.to_csv(out / "summary.csv", index=False)
    for name in ("robustness", "cost"):
        tables = [getattr(c, name).assign(data=c.data_name) for c in comparisons if not getattr(c, name).empty]
        if tables:
            pd.concat(tables, ignore_index=True).to_csv(out / f"{name}.csv", index=False)
    runs_csv(runs, comparisons).to_csv(out / "runs.csv", index=False)
    (out / "summary.md").write_text(markdown.render(comparisons, failures, context, out))
    (out / "report.html").write_text(html_report.render(comparisons, failures, runs, context))
    return summary


def show(comparisons: list[Comparison], failures: pd.DataFrame, context: dict, metrics: list[str] | None) -> None:
    console = terminal.console()
    sources = ", ".join(str(p) for p in context["paths"])
    recorded = sorted({m for c in comparisons for m in c.metrics})
    unknown = [m for m in metrics or [] if m not in recorded]
    if unknown:
        warn(f"--metrics {' '.join(unknown)}: not recorded in these runs (recorded: {', '.join(recorded)})")
    if len(comparisons) > 1:
        names = ", ".join(c.data_name for c in comparisons)
        console.print(
            f"These runs come from {len(comparisons)} data sets ({names}): one table each, never averaged together.",
            markup=False,
            soft_wrap=True,
        )
    for c in comparisons:
        console.print(
            f"\n{len(c.runs)} completed runs of data set {c.data_name} in {sources}, grouped by {c.grouped_by}",
            markup=False,
            soft_wrap=True,
        )
        chosen = c.terminal_metrics(metrics)
        summary, marks = c.summary_tables(chosen)
        terminal.print_comparison(
            console, "mean ± std over seeds", summary, marks, c.lead_table(chosen), c.correction, c.power_table(chosen)
        )
        if not c.robustness.empty:
            console.print(terminal.rich_table(c.robustness, title=ROBUSTNESS_TITLE, caption=robustness_caption(c)))
        if not c.cost.empty:
            console.print(terminal.rich_table(c.cost, title="Cost: mean ± std over seeds"))
    if not failures.empty:
        terminal.print_failures(console, failures)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    paths = input_paths(args)
    runs = read_runs(paths)
    completed = runs["status"] == "completed"
    failures = failure_table(runs[~completed])
    context = {
        "paths": paths,
        "n_runs": len(runs),
        "command": shlex.join([*PROG.split(), *argv]),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
    }
    if not completed.any():
        terminal.print_failures(terminal.console(), failures)
        raise UserError(f"nothing to compare: none of the {len(runs)} runs completed", code=1)
    comparisons = compare(runs[completed], args.by, args.metrics, args.correction)
    out = output_folder(args, paths)
    summary = write_files(comparisons, runs, failures, out, context)
    show(comparisons, failures, context, args.metrics)
    n_plots = sum(len(c.plots) for c in comparisons)
    print(f"Comparison written to {out}/: summary.csv, summary.md, runs.csv, report.html, {n_plots} plots in plots/")
    print(f"Open {(out / 'report.html').resolve().as_uri()} in a browser.")
    if args.log_wandb:
        return log_to_wandb(comparisons, runs, summary, out, context)
    return 0


def log_to_wandb(
    comparisons: list[Comparison], runs: pd.DataFrame, summary: pd.DataFrame, out: Path, context: dict
) -> int:
    from mmfuse.reporting.wandb_log import log_comparison  # deferred: wandb is imported only with --log-wandb

    try:
        folder, group = log_comparison(comparisons, runs, summary, out, context)
    except Exception as e:  # noqa: BLE001 - the report is written; say why W&B is missing and exit non-zero
        print(
            f"{PROG}: error: W&B logging failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            file=sys.stderr,
        )
        return 1
    if folder is None:
        print("W&B disabled (WANDB_MODE=disabled): nothing logged.")
    else:
        print(f"W&B comparison run (group {group}, job_type compare) in {folder}; upload it with: wandb sync {folder}")
    return 0

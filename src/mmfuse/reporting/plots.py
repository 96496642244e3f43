"""Comparison plots as PNG files: bar charts with error bars, validation curves with a band.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so
importing this module never changes the backend of a notebook or a GUI.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mmfuse.reporting.stats import higher_is_better, metric_order

BEST_COLOUR, OTHER_COLOUR = "#d95f02", "#1b9e77"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def group_colours(groups: list[str]) -> dict[str, tuple]:
    """One colour per group, the same in every plot."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    return {g: cmap(i % cmap.N) for i, g in enumerate(sorted(groups))}


def save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def bar_chart(stats: pd.DataFrame, runs: pd.DataFrame, metric: str, path: Path) -> Path:
    """Mean per group with ± std error bars, each run as a dot; the best group in its own colour."""
    rows = stats[stats["metric"] == metric].sort_values("group", ascending=False)
    fig = Figure(figsize=(7, 0.9 + 0.38 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    colours = [BEST_COLOUR if b else OTHER_COLOUR for b in rows["best"]]
    ax.barh(y, rows["mean"], xerr=rows["std"].fillna(0), color=colours, alpha=0.8, capsize=3)
    for yi, group in zip(y, rows["group"]):
        values = runs.loc[runs["group"] == group, metric].dropna()
        ax.scatter(values, np.full(len(values), yi), s=12, color="black", zorder=3)
    ax.set_yticks(y, rows["group"])
    direction = "higher" if higher_is_better(metric) else "lower"
    ax.set_title(f"{metric} ({direction} is better)")
    ax.set_xlabel("mean ± std over seeds; dots: single runs; orange: best")
    ax.grid(axis="x", alpha=0.3)
    # room for the group labels, without a layout engine's extra drawing pass
    label_inches = 0.3 + 0.075 * max((len(g) for g in rows["group"]), default=4)
    fig.subplots_adjust(
        left=min(0.6, label_inches / fig.get_figwidth()),
        right=0.97,
        top=1 - 0.45 / fig.get_figheight(),
        bottom=0.55 / fig.get_figheight(),
    )
    return save(fig, path)


def curve_chart(history: pd.DataFrame, metric: str, colours: dict[str, tuple], path: Path) -> Path:
    """Per group, the mean over its runs at every epoch with a ± std band."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for group, grp in history.dropna(subset=[metric]).groupby("group", sort=True):
        per_epoch = grp.groupby("epoch")[metric].agg(["mean", "std", "count"])
        ax.plot(per_epoch.index, per_epoch["mean"], label=group, color=colours.get(group), marker="o", ms=3)
        band = per_epoch["std"].fillna(0)
        ax.fill_between(
            per_epoch.index, per_epoch["mean"] - band, per_epoch["mean"] + band, color=colours.get(group), alpha=0.15
        )
    direction = "higher" if higher_is_better(metric) else "lower"
    ax.set_title(f"{metric} per epoch ({direction} is better): mean over seeds ± std")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(colours) > 6 else 1)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.92, bottom=0.12)
    return save(fig, path)


def curve_metrics(history: pd.DataFrame) -> list[str]:
    """Validation metrics recorded per epoch (running bests like val/acc_best repeat val/acc)."""
    return metric_order(
        [
            c
            for c in history.columns
            if c.startswith("val/")
            and not c.endswith("_best")
            and pd.api.types.is_numeric_dtype(history[c])
            and history[c].notna().any()
        ]
    )


def make_plots(
    runs: pd.DataFrame, stats: pd.DataFrame, history: pd.DataFrame, metrics: list[str], folder: Path, prefix: str = ""
) -> list[Path]:
    """Bar charts for `metrics` and validation curves from `history` (both with a `group` column)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        bar_chart(stats, runs, m, folder / f"{prefix}bar_{slug(m)}.png")
        for m in metrics
        if (stats["metric"] == m).any()
    ]
    if not history.empty and "epoch" in history:
        colours = group_colours(list(runs["group"].unique()))
        paths += [
            curve_chart(history, m, colours, folder / f"{prefix}curve_{slug(m)}.png") for m in curve_metrics(history)
        ]
    return paths

"""Robustness and cost in a comparison: tables (mean ± std over seeds) and plots, from each run's record.

Per run (run.json, written by mmfuse.evaluation): the clean test metric, the
metric with modalities missing (every subset of present modalities), curves
of the metric against noise severity per modality and corruption, and the
cost figures (parameters, FLOPs, latency, epoch time, peak memory).

Summaries, as MultiBench defines them (Liang et al., 2021), computed from
the user's runs and never from stored curves:
- relative robustness: the area under the metric-vs-severity curve
  (trapezoids over the recorded severities, 0 to 1);
- effective robustness against late fusion: sum over severities of
  f(s) - (lf(s) + f(0) - lf(0)), where lf is the mean curve of the `late`
  runs of the same comparison (those that share the run's other config
  values when there are such), i.e. how much better than late fusion the
  run holds up once both start from the same clean score. Reported only
  when late-fusion runs are present; > 0 degrades less than late fusion.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmfuse.reporting.runs import read_record

BASELINE = "late"
COST_COLUMNS = {  # record key -> table column
    "params": "params",
    "flops_per_sample": "MFLOPs/sample",
    "latency_ms_per_sample": "latency ms/sample",
    "train_seconds_per_epoch": "train s/epoch",
    "peak_rss_mb": "peak RSS MB",
    "peak_cuda_mb": "peak CUDA MB",
}


def missing_label(present: str, modalities: list[str]) -> str:
    """'image+text' present of [image, text, audio] -> 'no audio'."""
    kept = set(present.split("+"))
    return "no " + "+".join(m for m in modalities if m not in kept)


def load(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, per_run): noise curves in long form, and one row per run of robustness and cost figures."""
    curves, rows = [], []
    for _, run in runs.iterrows():
        try:
            rec = read_record(Path(run["run_dir"]))
        except ValueError:
            continue
        row = {"run_dir": run["run_dir"], "group": run["group"], "fusion": (rec.get("choices") or {}).get("fusion")}
        cost = {**(rec.get("complexity") or {}), "params": (rec.get("params") or {}).get("total")}
        row.update({k: cost.get(k) for k in COST_COLUMNS})
        rob = rec.get("robustness") or {}
        if rob:
            modalities = list((rec.get("data") or {}).get("modalities") or [])
            row.update(metric=rob.get("metric"), clean=rob.get("clean"))
            for present, value in (rob.get("present_subsets") or {}).items():
                row[missing_label(present, modalities)] = value
            severities = rob.get("severities") or []
            for m, per in (rob.get("noise") or {}).items():
                for c, values in per.items():
                    curves += [{"run_dir": run["run_dir"], "group": run["group"], "modality": m, "corruption": c,
                                "severity": float(s), "value": v} for s, v in zip(severities, values)]
            for m, per in (rob.get("auc") or {}).items():
                row[f"AUC {m}"] = float(np.mean(list(per.values()))) if per else math.nan
        rows.append(row)
    return pd.DataFrame(curves), pd.DataFrame(rows)


def add_effective_robustness(curves: pd.DataFrame, per_run: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> bool:
    """Adds `eff <modality>` columns to per_run against the late-fusion runs; False when there are none."""
    if curves.empty or "fusion" not in per_run:
        return False
    late = per_run.loc[per_run["fusion"] == BASELINE, "run_dir"]
    if late.empty:
        return False
    others = [k for k in keys if k not in ("choice.fusion", "cfg.fusion.name", "cfg.fusion._target_")]
    config = runs.set_index("run_dir")
    for i, run in per_run.iterrows():
        baseline = [r for r in late if all(str(config.at[r, k]) == str(config.at[run["run_dir"], k]) for k in others)] \
            or list(late)
        mine = curves[curves["run_dir"] == run["run_dir"]]
        ref = curves[curves["run_dir"].isin(baseline)].groupby(["modality", "corruption", "severity"])["value"].mean()
        per_modality: dict[str, list[float]] = {}
        for (m, c), curve in mine.groupby(["modality", "corruption"]):
            curve = curve.sort_values("severity")
            try:
                lf = ref.loc[(m, c)].reindex(curve["severity"].values).to_numpy()
            except KeyError:
                continue
            f = curve["value"].to_numpy()
            if np.isnan(lf).any():
                continue
            per_modality.setdefault(m, []).append(float(np.sum(f - (lf + f[0] - lf[0]))))
        for m, values in per_modality.items():
            per_run.at[i, f"eff {m}"] = float(np.mean(values))
    return True


def mean_std(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna().astype(float)
    if values.empty:
        return "-"
    if len(values) == 1 or values.nunique() == 1:  # one run, or a figure that does not vary (parameters)
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def robustness_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per group: clean metric, metric without each modality (and other missing sets), AUC and effective robustness
    per modality."""
    if "clean" not in per_run or per_run["clean"].isna().all():
        return pd.DataFrame()
    missing = sorted((c for c in per_run.columns if c.startswith("no ")), key=lambda c: (c.count("+"), c))
    columns = [
        "clean",
        *missing[: max(1, sum(1 for c in missing if "+" not in c))],
        *[c for c in per_run.columns if c.startswith("AUC ")],
        *[c for c in per_run.columns if c.startswith("eff ")],
    ]
    table = per_run.groupby("group", sort=True)[columns].agg(mean_std)
    metric = per_run["metric"].dropna().iloc[0] if "metric" in per_run and per_run["metric"].notna().any() else "metric"
    table.insert(0, "n", per_run.groupby("group").size())
    table.columns = [f"{c} ({metric})" if c == "clean" else c for c in table.columns]
    return table.reset_index()


def cost_table(per_run: pd.DataFrame) -> pd.DataFrame:
    present = [k for k in COST_COLUMNS if k in per_run and per_run[k].notna().any()]
    if not present:
        return pd.DataFrame()
    frame = per_run[["group", *present]].copy()
    if "flops_per_sample" in frame:
        frame["flops_per_sample"] = frame["flops_per_sample"] / 1e6
    digits = {
        "params": 0,
        "flops_per_sample": 3,
        "latency_ms_per_sample": 4,
        "train_seconds_per_epoch": 2,
        "peak_rss_mb": 0,
        "peak_cuda_mb": 0,
    }
    table = frame.groupby("group", sort=True).agg({k: (lambda v, d=digits[k]: mean_std(v, d)) for k in present})
    return table.rename(columns=COST_COLUMNS).reset_index()


# --- plots ---------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def noise_plots(curves: pd.DataFrame, metric: str, colours: dict, folder: Path, prefix: str) -> list[Path]:
    """Per modality: the metric against severity for each corruption, one line per group (mean ± std band)."""
    paths = []
    for m, by_m in curves.groupby("modality", sort=True):
        corruptions = sorted(by_m["corruption"].unique())
        fig = Figure(figsize=(5.2 * len(corruptions), 4))
        for j, c in enumerate(corruptions):
            ax = fig.add_subplot(1, len(corruptions), j + 1)
            for group, grp in by_m[by_m["corruption"] == c].groupby("group", sort=True):
                stats = grp.groupby("severity")["value"].agg(["mean", "std"])
                band = stats["std"].fillna(0)
                ax.plot(stats.index, stats["mean"], marker="o", ms=3, label=group, color=colours.get(group))
                ax.fill_between(
                    stats.index, stats["mean"] - band, stats["mean"] + band, alpha=0.15, color=colours.get(group)
                )
            ax.set_title(f"{m}: {c} noise")
            ax.set_xlabel("severity")
            ax.set_ylabel(f"test {metric}")
            ax.grid(alpha=0.3)
        fig.axes[0].legend(fontsize="small")
        fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.13, wspace=0.25)
        paths.append(_save(fig, folder / f"{prefix}robustness_noise_{m}.png"))
    return paths


def missing_heatmap(per_run: pd.DataFrame, metric: str, folder: Path, prefix: str) -> Path | None:
    """Groups x missing sets: the mean metric with those modalities removed."""
    columns = sorted((c for c in per_run.columns if c.startswith("no ")), key=lambda c: (c.count("+"), c))
    if not columns:
        return None
    means = per_run.groupby("group", sort=True)[["clean", *columns]].mean()
    width, height = 3.0 + 0.75 * len(means.columns), 2.2 + 0.4 * len(means)
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    image = ax.imshow(means.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(means.columns)), ["clean", *columns], rotation=35, ha="right", fontsize="small")
    ax.set_yticks(range(len(means)), means.index, fontsize="small")
    for (y, x), v in np.ndenumerate(means.to_numpy(dtype=float)):
        if not math.isnan(v):
            ax.text(
                x,
                y,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < np.nanmean(means.to_numpy(dtype=float)) else "black",
            )
    fig.colorbar(image, ax=ax, label=f"test {metric} (mean over seeds)")
    ax.set_title("missing modalities: strategy x removed set")
    label_inches = 0.3 + 0.075 * max(len(str(g)) for g in means.index)
    fig.subplots_adjust(left=label_inches / width, right=0.97, top=1 - 0.45 / height, bottom=1.25 / height)
    return _save(fig, folder / f"{prefix}robustness_missing_heatmap.png")


def cost_scatter(
    per_run: pd.DataFrame, runs: pd.DataFrame, metric: str, colours: dict, folder: Path, prefix: str
) -> Path | None:
    """Accuracy against FLOPs and against latency: one point per group, error bars over seeds."""
    axes = [k for k in ("flops_per_sample", "latency_ms_per_sample") if k in per_run and per_run[k].notna().any()]
    if not axes or metric not in runs:
        return None
    frame = per_run.merge(runs[["run_dir", metric]], on="run_dir")
    fig = Figure(figsize=(5.5 * len(axes), 4.2))
    for j, key in enumerate(axes):
        ax = fig.add_subplot(1, len(axes), j + 1)
        for group, grp in frame.groupby("group", sort=True):
            x, y = grp[key].astype(float), grp[metric].astype(float)
            ax.errorbar(
                x.mean(),
                y.mean(),
                xerr=x.std(ddof=1) if len(x) > 1 else 0,
                yerr=y.std(ddof=1) if len(y) > 1 else 0,
                fmt="o",
                capsize=3,
                color=colours.get(group),
                label=group,
            )
            ax.annotate(group, (x.mean(), y.mean()), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("FLOPs per sample (log)" if key == "flops_per_sample" else "latency ms per sample (log)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3, which="both")
    fig.axes[0].set_title(f"{metric} vs cost: mean ± std over seeds")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.13, wspace=0.25)
    return _save(fig, folder / f"{prefix}cost_vs_{metric.replace('/', '_')}.png")

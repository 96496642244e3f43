"""Per-group statistics over seeds: mean, std, 95% CI, the best group, and whether its lead holds.

Tests compare the best group with every other group, metric by metric: a
paired t-test over seeds when both groups ran exactly the same seeds (the
seed fixes initialisation and batch order, so paired differences cancel
what the seed contributes), otherwise Welch's t-test (unequal variances).
No correction for multiple comparisons is applied; the p-values are given.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from scipy import stats as scistats

from mmfuse.reporting.runs import key_label

ALPHA = 0.05
PAIRED, WELCH, NO_TEST = "paired t-test", "Welch's t-test", "no test (fewer than 2 runs)"
LOWER_IS_BETTER = re.compile(r"(loss|mae|mse|rmse|error|err|nll|perplexity)", re.IGNORECASE)
STAGE_ORDER = ("test/", "val/", "train/")
STAT_COLUMNS = ["metric", "higher_is_better", "group", "n", "mean", "std", "ci95_low", "ci95_high", "best",
                "gap_to_best", "test_vs_best", "p_vs_best", "best_lead_significant"]


def higher_is_better(metric: str) -> bool:
    return not LOWER_IS_BETTER.search(metric.rsplit("/", 1)[-1])


def metric_order(metrics: list[str]) -> list[str]:
    """test metrics first, then best-so-far validation metrics, the rest of validation, training."""
    def rank(m: str) -> tuple:
        stage = next((i for i, s in enumerate(STAGE_ORDER) if m.startswith(s)), len(STAGE_ORDER))
        return (stage, not m.endswith("_best"), m)

    return sorted(metrics, key=rank)


def headline_metrics(metrics: list[str]) -> list[str]:
    """What a decision rests on: test metrics and best validation scores (all metrics if none)."""
    chosen = [m for m in metric_order(metrics) if m.startswith("test/") or m.endswith("_best")]
    return chosen or metric_order(metrics)


def ci95(values: np.ndarray) -> tuple[float, float]:
    """95% confidence interval of the mean, from the t-distribution with n-1 degrees of freedom."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = scistats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return values.mean() - half, values.mean() + half


def by_seed(values: np.ndarray, seeds: np.ndarray) -> dict | None:
    """{seed: value}, or None where seeds are missing or repeated (no pairing possible)."""
    if pd.isna(seeds).any() or len(set(seeds.tolist())) < len(seeds):
        return None
    return dict(zip(seeds.tolist(), values.tolist()))


def lead_test(best: np.ndarray, best_seeds: np.ndarray, other: np.ndarray, other_seeds: np.ndarray) -> tuple[str, float]:
    """(test name, two-sided p-value) for the difference between two groups' values."""
    a, b = by_seed(best, best_seeds), by_seed(other, other_seeds)
    paired = a is not None and b is not None and len(a) >= 2 and a.keys() == b.keys()
    if not paired and (len(best) < 2 or len(other) < 2):
        return NO_TEST, float("nan")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # identical values give nan, which is reported as such
        if paired:
            seeds = sorted(a)
            p = scistats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue
        else:
            p = scistats.ttest_ind(best, other, equal_var=False).pvalue
    return (PAIRED if paired else WELCH), float(p)


def metric_stats(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per group for one metric: n, mean, std, CI, best, gap to the best, test and p."""
    up = higher_is_better(metric)
    measured = runs.dropna(subset=[metric])
    samples = {g: (grp[metric].to_numpy(dtype=float), grp["seed"].to_numpy())
               for g, grp in measured.groupby("group", sort=True)}
    if not samples:
        return pd.DataFrame(columns=STAT_COLUMNS)
    means = {g: v.mean() for g, (v, _) in samples.items()}
    best = (max if up else min)(means, key=means.get)
    rows = []
    for g, (values, seeds) in samples.items():
        low, high = ci95(values)
        test, p = ("", float("nan")) if g == best else lead_test(*samples[best], values, seeds)
        rows.append({"metric": metric, "higher_is_better": up, "group": g, "n": len(values), "mean": means[g],
                     "std": values.std(ddof=1) if len(values) > 1 else float("nan"), "ci95_low": low,
                     "ci95_high": high, "best": g == best,
                     "gap_to_best": (means[best] - means[g]) if up else (means[g] - means[best]),
                     "test_vs_best": test, "p_vs_best": p, "best_lead_significant": bool(p < ALPHA)})
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


def summarise_metrics(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Long table, one row per (metric, group), of completed runs that carry a `group` column."""
    present = [m for m in metric_order(metrics) if m in runs]
    slim = runs[["group", "seed", *present]]  # grouping the full frame (hundreds of config columns) is slow
    parts = [metric_stats(slim, m) for m in present]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STAT_COLUMNS)


def seed_list(seeds: pd.Series) -> str:
    """`0,1,2` (seeds are stored as floats once a column holds a missing one)."""
    return ",".join(str(int(s)) if isinstance(s, (int, float)) and float(s).is_integer() else str(s)
                    for s in sorted(seeds.dropna()))


def group_facts(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: its key values, number of runs, seeds, parameter count, train and wall time."""
    rows = []
    for g, grp in runs.groupby("group", sort=True):
        row = {"group": g, **{key_label(k): grp[k].iloc[0] for k in keys}, "n": len(grp),
               "seeds": seed_list(grp["seed"]),
               "params": grp["params"].mean(),
               "fit_seconds mean": grp["fit_seconds"].mean(), "fit_seconds std": grp["fit_seconds"].std(ddof=1),
               "wall_seconds mean": grp["wall_seconds"].mean()}
        rows.append(row)
    return pd.DataFrame(rows)


def wide_summary(facts: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """One row per group: its facts, then `<metric> mean|std|n|ci95_low|ci95_high|best|test_vs_best|p_vs_best`."""
    wide = facts.set_index("group")
    fields = ["mean", "std", "n", "ci95_low", "ci95_high", "best", "test_vs_best", "p_vs_best"]
    for metric, rows in long.groupby("metric", sort=False) if not long.empty else []:
        block = rows.set_index("group")[fields]
        block.columns = [f"{metric} {f}" for f in fields]
        wide = wide.join(block)
    return wide.reset_index()

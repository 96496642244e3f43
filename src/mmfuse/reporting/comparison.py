"""One data set's comparison: completed runs grouped by configuration, with every statistic the report shows."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmfuse.reporting import robustness
from mmfuse.reporting.provenance import provenance
from mmfuse.reporting.runs import (
    group_labels,
    key_label,
    load_history,
    metric_columns,
    varying_keys,
)
from mmfuse.reporting.stats import (
    group_facts,
    headline_metrics,
    summarise_metrics,
    wide_summary,
)
from mmfuse.reporting.tables import detail_table, lead_table, power_table, summary_table

DEFAULT_TERMINAL_METRICS = ("test/acc", "test/f1", "val/acc_best")


@dataclass
class Comparison:
    data_name: str
    keys: list[str]            # the columns the groups differ by
    runs: pd.DataFrame         # completed runs of this data set, with a `group` column
    metrics: list[str]         # every recorded metric
    headline: list[str]        # the metrics the summary tables and bar charts show
    facts: pd.DataFrame        # per group: n, seeds, params, times
    stats: pd.DataFrame        # per (metric, group): n, mean, std, CIs, best, gap, tests, p raw and corrected, power
    summary: pd.DataFrame      # wide: one row per group (summary.csv)
    origin: pd.DataFrame       # per group: commands that rerun it, config differences
    history: pd.DataFrame      # per (run, epoch) metrics, with `group`
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)       # per (run, modality, corruption, severity) metric
    per_run: pd.DataFrame = field(default_factory=pd.DataFrame)      # per run: robustness summaries and cost figures
    robustness: pd.DataFrame = field(default_factory=pd.DataFrame)   # per group: mean ± std of those summaries
    # per group: parameters, FLOPs, latency, time, memory
    cost: pd.DataFrame = field(default_factory=pd.DataFrame)
    # late-fusion runs present: effective robustness shown
    has_baseline: bool = False
    plots: list[Path] = field(default_factory=list)
    correction: str = "holm"                                         # of the p-values against the best group

    @property
    def grouped_by(self) -> str:
        return ", ".join(key_label(k) for k in self.keys) or "nothing varies: all runs form one group"

    def summary_tables(self, metrics: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        return summary_table(self.facts, self.stats, metrics or self.headline)

    def lead_table(self, metrics: list[str] | None = None) -> pd.DataFrame:
        return lead_table(self.stats, metrics or self.headline)

    def power_table(self, metrics: list[str] | None = None) -> pd.DataFrame:
        return power_table(self.stats, metrics or self.headline)

    def detail_table(self) -> pd.DataFrame:
        return detail_table(self.stats)

    def terminal_metrics(self, chosen: list[str] | None) -> list[str]:
        if chosen:
            return [m for m in chosen if m in self.metrics]
        return [m for m in DEFAULT_TERMINAL_METRICS if m in self.metrics] or self.headline[:3]

    @property
    def robustness_metric(self) -> str:
        if "metric" in self.per_run and self.per_run["metric"].notna().any():
            return str(self.per_run["metric"].dropna().iloc[0])
        return "acc"


def compare_data_set(data_name: str, done: pd.DataFrame, keys: list[str] | None = None,
                     extra_metrics: list[str] | None = None, correction: str = "holm") -> Comparison:
    """Group completed runs of one data set by `keys` (default: the config keys that vary, seed excluded).

    `correction` (holm, bonferroni, none) adjusts the p-values of each metric's comparisons with its best group.
    """
    done = done.copy()
    keys = keys if keys is not None else varying_keys(done)
    done["group"] = group_labels(done, keys)
    metrics = [m for m in metric_columns(done) if done[m].notna().any()]
    headline = list(dict.fromkeys([*headline_metrics(metrics), *[m for m in extra_metrics or [] if m in metrics]]))
    facts = group_facts(done, keys)
    stats = summarise_metrics(done, metrics, correction)
    history = load_history(done)
    if not history.empty:
        history = history.merge(done[["run_dir", "group"]], on="run_dir")
    curves, per_run = robustness.load(done)
    has_baseline = robustness.add_effective_robustness(curves, per_run, done, keys)
    return Comparison(data_name=data_name, keys=keys, runs=done, metrics=metrics, headline=headline, facts=facts,
                      stats=stats, summary=wide_summary(facts, stats, correction), origin=provenance(done),
                      history=history,
                      curves=curves, per_run=per_run, robustness=robustness.robustness_table(per_run),
                      cost=robustness.cost_table(per_run), has_baseline=has_baseline,
                      correction=correction)


ROBUSTNESS_TITLE = "Robustness on the test set: mean ± std over seeds"


def robustness_caption(c: Comparison) -> str:
    metric = c.robustness_metric
    text = (f"no X: test {metric} with modality X removed; AUC X: area under {metric} vs noise severity 0-1 on X "
            "(relative robustness)")
    if c.has_baseline:
        text += "; eff X: effective robustness against late fusion (> 0: degrades less than late fusion)"
    return text

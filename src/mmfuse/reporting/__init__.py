"""Reporting: read run records from disk (never training code) into tables, statistics, plots and reports.

`load_runs(path)` is the reader `mmfuse compare` and the analysis notebook share.
"""
from mmfuse.reporting.runs import (
    find_run_dirs,
    group_labels,
    latest_sweep,
    load_history,
    load_runs,
    metric_columns,
    varying_keys,
)

__all__ = [
    "find_run_dirs",
    "group_labels",
    "latest_sweep",
    "load_history",
    "load_runs",
    "metric_columns",
    "varying_keys",
]

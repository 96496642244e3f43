"""Display tables (strings) shared by the terminal, summary.md and report.html."""
from __future__ import annotations

import math

import pandas as pd

from mmfuse.reporting.stats import ALPHA, PAIRED, WELCH, metric_order

BEST, TIED, UNTESTED = "★", "≈", "?"
LEGEND = (f"{BEST} best group for the metric; {TIED} the best group's lead over this group is not significant "
          f"(p ≥ {ALPHA}); {UNTESTED} too few runs to test; unmarked: the best group is significantly better. "
          f"Tests: {PAIRED} over matching seeds where both groups ran the same seeds, else {WELCH}; "
          "no correction for multiple comparisons.")
SHORT_TEST = {PAIRED: "paired", WELCH: "Welch"}


def number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3f}"


def p_value(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def mark(row: pd.Series) -> str:
    """How a group stands against the best group of a metric."""
    if row["best"]:
        return BEST
    if not row["test_vs_best"] or row["test_vs_best"] not in SHORT_TEST:
        return UNTESTED
    return "" if row["best_lead_significant"] else TIED


def mean_std(row: pd.Series) -> str:
    text = number(row["mean"]) if math.isnan(row["std"]) else f"{number(row['mean'])} ± {number(row['std'])}"
    return f"{text} {mark(row)}".rstrip()


def summary_table(facts: pd.DataFrame, stats: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(text, marks): one row per group with `mean ± std` per metric; marks say which cells are best/tied."""
    text = facts[["group", "n", "seeds"]].astype(str).set_index("group")
    marks = pd.DataFrame(index=text.index)
    for m in metrics:
        rows = stats[stats["metric"] == m].set_index("group")
        if rows.empty:
            continue
        text[m] = rows.apply(mean_std, axis=1).reindex(text.index).fillna("-")
        marks[m] = rows.apply(mark, axis=1).reindex(text.index).fillna("")
    text["params"] = [number(p) if not math.isnan(p) else "-" for p in facts["params"]]
    text["train s"] = [f"{s:.1f}" if not math.isnan(s) else "-" for s in facts["fit_seconds mean"]]
    return text.reset_index(), marks.reset_index()


def lead_table(stats: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Rows: groups; cells: how far behind the best group it is, the p-value and the test."""
    table = pd.DataFrame(index=sorted(stats["group"].unique()))
    for m in metrics:
        rows = stats[stats["metric"] == m].set_index("group")
        if rows.empty:
            continue
        table[m] = rows.apply(lead_cell, axis=1).reindex(table.index).fillna("-")
    return table.rename_axis("group").reset_index()


def lead_cell(row: pd.Series) -> str:
    if row["best"]:
        return f"best ({number(row['mean'])})"
    test = SHORT_TEST.get(row["test_vs_best"])
    if test is None:
        return f"{number(row['gap_to_best'])} behind · untested"
    return f"{number(row['gap_to_best'])} behind · {p_value(row['p_vs_best'])} {test}"


def detail_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Every metric of every group: n, mean ± std, 95% CI and the test against the best group."""
    rows = []
    for m in metric_order(list(stats["metric"].unique())):
        for _, r in stats[stats["metric"] == m].iterrows():
            ci = "-" if math.isnan(r["ci95_low"]) else f"[{number(r['ci95_low'])}, {number(r['ci95_high'])}]"
            rows.append({"metric": m, "better": "higher" if r["higher_is_better"] else "lower", "group": r["group"],
                         "n": str(r["n"]), "mean ± std": mean_std(r), "95% CI": ci,
                         "vs best": lead_cell(r) if not r["best"] else "best"})
    return pd.DataFrame(rows)


def failure_table(failed: pd.DataFrame) -> pd.DataFrame:
    """Runs that did not complete: never averaged, always shown."""
    errors = failed["error"] if "error" in failed else pd.Series([None] * len(failed), index=failed.index)
    return pd.DataFrame({
        "run": [str(d).rsplit("/", 1)[-1] for d in failed["run_dir"]],
        "status": failed["status"].fillna("unknown").astype(str),
        "error": [first_line(e) for e in errors],
    })


def first_line(error: object, limit: int = 200) -> str:
    if error is None or (isinstance(error, float) and math.isnan(error)):
        return ""
    line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"

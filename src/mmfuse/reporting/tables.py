"""Display tables (strings) shared by the terminal, summary.md and report.html."""
from __future__ import annotations

import math

import pandas as pd

from mmfuse.reporting.stats import (
    ALPHA,
    BOOTSTRAP_MIN_RUNS,
    MAX_SEEDS,
    PAIRED,
    POWER,
    WELCH,
    metric_order,
)

BEST, TIED, UNTESTED = "★", "≈", "?"
UNTESTABLE = "untestable with these seeds"
SHORT_TEST = {PAIRED: "paired", WELCH: "Welch"}
CORRECTION_NAME = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "uncorrected"}


def p_label(correction: str) -> str:
    """`Holm-corrected p`, `Bonferroni-corrected p` or `uncorrected p`."""
    return "uncorrected p" if correction == "none" else f"{CORRECTION_NAME[correction]}-corrected p"


def legend(correction: str) -> str:
    """What the marks and p-values of a comparison mean, naming the correction applied."""
    family = ("not corrected for multiple comparisons" if correction == "none" else
              f"{CORRECTION_NAME[correction]}-corrected over each metric's comparisons with its best group")
    return (f"{BEST} best group for the metric; {TIED} the best group's lead over this group is not significant "
            f"({p_label(correction)} ≥ {ALPHA}); {UNTESTED} {UNTESTABLE} (fewer than 2 runs, or a difference "
            f"without variance); unmarked: the best group is significantly better. Tests: {PAIRED} over matching "
            f"seeds where both groups ran the same seeds, else {WELCH}; p-values {family}; raw p-values in "
            "summary.csv and the report's detail table; 95% CIs of gaps are per comparison, not corrected.")


def lead_title(correction: str) -> str:
    return f"Behind the best group by [95% CI of the gap], {p_label(correction)} and test"


def power_caption(correction: str) -> str:
    level = (f"α = {ALPHA}" if correction == "none" else f"α = {ALPHA} divided by the number of comparisons of the "
             f"metric, enough under {CORRECTION_NAME[correction]}")
    return (f"For each lead that is not significant ({TIED}): the smallest gap these seeds detect, and the seeds per "
            f"group (in all) that would detect the observed gap; power {POWER}, two-sided, {level}, the observed SD "
            "taken as the true one. Far more seeds needed than run: the groups may well be equal; "
            "a few more: run them before calling it a tie.")


def number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3f}"


def gap_number(x: float) -> str:
    """Like number(), with two significant digits below 0.01 so that a small gap never reads 0.000."""
    if x is None or math.isnan(x) or x == 0 or abs(x) >= 0.01:
        return number(x)
    return f"{x:.2g}"


def p_value(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def mark(row: pd.Series) -> str:
    """How a group stands against the best group of a metric (significance after the correction)."""
    if row["best"]:
        return BEST
    if row["test_vs_best"] not in SHORT_TEST:
        return UNTESTED
    return "" if row["best_lead_significant"] else TIED


def interval(low: float, high: float, fmt=number) -> str:
    return "-" if math.isnan(low) else f"[{fmt(low)}, {fmt(high)}]"


def seeds(n: float, gap: float) -> str:
    """Seeds needed: a count, `> 1,000,000 seeds`, or `no gap to detect` for a gap of 0."""
    if math.isnan(n):
        return "-"
    if math.isinf(n):
        return "no gap to detect" if gap <= 0 else f"> {MAX_SEEDS:,} seeds"
    return f"{int(n)} seeds"


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
    """Rows: groups; cells: how far behind the best group it is, with CI, corrected p-value and test."""
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
        return f"{gap_number(row['gap_to_best'])} · {UNTESTABLE}"
    return (f"{gap_number(row['gap_to_best'])} {interval(row['gap_ci95_low'], row['gap_ci95_high'], gap_number)} · "
            f"{p_value(row['p_vs_best_corrected'])} {test}")


def power_table(stats: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Groups with a lead that is not significant; cells: `detectable gap · seeds needed` (empty: none such)."""
    chosen = stats[stats["metric"].isin(metrics)]
    tied = chosen[chosen["detectable_gap"].notna()]
    table = pd.DataFrame(index=sorted(tied["group"].unique()))
    for m in metrics:
        rows = chosen[chosen["metric"] == m].set_index("group")
        if not rows.empty and len(table.index):
            table[m] = rows.apply(power_cell, axis=1).reindex(table.index).fillna("-")
    return table.rename_axis("group").reset_index()


def power_cell(row: pd.Series) -> str:
    if row["best"]:
        return "best"
    if row["test_vs_best"] not in SHORT_TEST:
        return UNTESTABLE
    if math.isnan(row["detectable_gap"]):
        return "significant"
    needed = seeds(row["seeds_needed"], row["gap_to_best"])
    return f"detects {gap_number(row['detectable_gap'])} · {needed if row['gap_to_best'] <= 0 else 'needs ' + needed}"


def detail_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Every metric of every group: mean ± std, CIs, the gap to the best group with its CI, tests and power."""
    correction = str(stats["correction"].iloc[0]) if len(stats) else "holm"
    corrected = f"p {CORRECTION_NAME[correction]}" if correction != "none" else None
    bootstrap = bool((stats["n"] >= BOOTSTRAP_MIN_RUNS).any())
    rows = []
    for m in metric_order(list(stats["metric"].unique())):
        for _, r in stats[stats["metric"] == m].iterrows():
            row = {"metric": m, "better": "higher" if r["higher_is_better"] else "lower", "group": r["group"],
                   "n": str(r["n"]), "mean ± std": mean_std(r), "95% CI": interval(r["ci95_low"], r["ci95_high"])}
            if bootstrap:
                row[f"bootstrap 95% CI (BCa, n ≥ {BOOTSTRAP_MIN_RUNS})"] = interval(r["boot_ci95_low"],
                                                                                   r["boot_ci95_high"])
            tested = r["test_vs_best"] in SHORT_TEST
            row |= {"gap to best": "best" if r["best"] else gap_number(r["gap_to_best"]),
                    "gap 95% CI": interval(r["gap_ci95_low"], r["gap_ci95_high"], gap_number),
                    "test": r["test_vs_best"] or "-", "p raw": p_value(r["p_vs_best"]) if tested else "-"}
            if corrected:
                row[corrected] = p_value(r["p_vs_best_corrected"]) if tested else "-"
            row |= {"detectable gap": gap_number(r["detectable_gap"]),
                    "seeds needed": seeds(r["seeds_needed"], r["gap_to_best"])}
            rows.append(row)
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

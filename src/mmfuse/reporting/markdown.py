"""summary.md: the comparison as Markdown, to paste into a pull request, an issue or a lab notebook."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmfuse.reporting.comparison import Comparison, robustness_caption
from mmfuse.reporting.tables import lead_title, legend, power_caption


def cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def origin_lines(comparison: Comparison) -> list[str]:
    lines = []
    for _, row in comparison.origin.iterrows():
        lines.append(f"- **{cell(row['group'])}**")
        lines += [f"  - `{command}`" for command in row["commands"]]
        if row["config_differences"]:
            lines.append("  - config: " + ", ".join(f"`{d}`" for d in row["config_differences"]))
    return lines


def data_set_section(comparison: Comparison, out: Path, heading: bool) -> list[str]:
    summary, _ = comparison.summary_tables()
    correction, power = comparison.correction, comparison.power_table()
    lines = [f"## Data set: {comparison.data_name}", ""] if heading else []
    lines += [f"{len(comparison.runs)} completed runs, grouped by {comparison.grouped_by}.", "",
              "### Summary (mean ± std over seeds)", "", md_table(summary), "", f"_{legend(correction)}_", "",
              f"### {lead_title(correction)}", "", md_table(comparison.lead_table()), ""]
    if not power.empty:
        lines += ["### ≈: equal, or too few seeds?", "", md_table(power), "", f"_{power_caption(correction)}_", ""]
    lines += ["### Every metric: confidence intervals, gaps, tests and power", "",
              md_table(comparison.detail_table()), "",
              "### Commands and config differences", "", *origin_lines(comparison), ""]
    if not comparison.robustness.empty:
        lines += ["### Robustness (mean ± std over seeds)", "", md_table(comparison.robustness), "",
                  f"_{robustness_caption(comparison)}_", ""]
    if not comparison.cost.empty:
        lines += ["### Cost (mean ± std over seeds)", "", md_table(comparison.cost), ""]
    if comparison.plots:
        lines += ["### Plots", ""] + [f"![{p.name}]({p.relative_to(out).as_posix()})" for p in comparison.plots] + [""]
    return lines


def render(comparisons: list[Comparison], failures: pd.DataFrame, context: dict, out: Path) -> str:
    lines = ["# Fusion comparison", "",
             f"{context['n_runs']} runs from {', '.join(f'`{p}`' for p in context['paths'])}; "
             f"written by `{context['command']}` on {context['when']}.", ""]
    for comparison in comparisons:
        lines += data_set_section(comparison, out, heading=len(comparisons) > 1)
    if not failures.empty:
        lines += ["## Runs that did not complete (not averaged)", "", md_table(failures), ""]
    return "\n".join(lines)

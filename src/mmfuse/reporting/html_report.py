"""report.html: one self-contained page (plots embedded as base64 PNG) that opens in any browser."""
from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

import pandas as pd

from mmfuse.reporting.comparison import Comparison, robustness_caption
from mmfuse.reporting.tables import BEST, TIED, lead_title, legend, power_caption

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; white-space: normal; }
td.best { font-weight: bold; background: #e3f4e3; } td.tied { background: #f2faf2; }
.scroll { overflow-x: auto; } .legend, .meta { color: #555; font-size: 0.85rem; }
code { background: #f5f5f5; padding: 0.1rem 0.3rem; border-radius: 3px; }
figure { display: inline-block; width: calc(50% - 1.5rem); max-width: 700px; margin: 0.5rem 1rem 1rem 0;
         vertical-align: top; }
figure img { width: 100%; border: 1px solid #eee; } figcaption { font-size: 0.8rem; color: #555; }
@media (max-width: 900px) { figure { width: 100%; } }
ul.config { margin: 0; padding-left: 1.1rem; font-size: 0.85rem; }
"""
TEXT_COLUMNS = {"group", "run", "status", "error", "metric", "commands", "config differences", "better"}
MARK_CLASS = {BEST: "best", TIED: "tied"}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "data"


def html_table(df: pd.DataFrame, table_id: str | None = None, css_class: str = "",
               marks: pd.DataFrame | None = None, raw_columns: tuple[str, ...] = ()) -> str:
    """A table; cells are escaped except `raw_columns` (already HTML); `marks` adds best/tied classes."""
    def td(i: int, col: str, value: object) -> str:
        classes = ["text"] if col in TEXT_COLUMNS else []
        if marks is not None and col in marks and marks.at[i, col] in MARK_CLASS:
            classes.append(MARK_CLASS[marks.at[i, col]])
        attr = f' class="{" ".join(classes)}"' if classes else ""
        return f"<td{attr}>{value if col in raw_columns else escape(str(value))}</td>"

    text_class = ' class="text"'
    head = "".join(f"<th{text_class if c in TEXT_COLUMNS else ''}>{escape(str(c))}</th>" for c in df.columns)
    body = "\n".join("<tr>" + "".join(td(i, c, row[c]) for c in df.columns) + "</tr>" for i, row in df.iterrows())
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return (f'<div class="scroll"><table{ident} class="{escape(css_class)}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table></div>")


def figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = escape(path.name)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{name}" data-file="{name}">'
            f"<figcaption>{name}</figcaption></figure>")


def origin_table(comparison: Comparison) -> str:
    rows = pd.DataFrame({
        "group": comparison.origin["group"],
        "commands": ["<br>".join(f"<code>{escape(c)}</code>" for c in cs) for cs in comparison.origin["commands"]],
        "config differences": ['<ul class="config">' + "".join(f"<li><code>{escape(d)}</code></li>" for d in ds)
                               + "</ul>" if ds else "-" for ds in comparison.origin["config_differences"]],
    })
    return html_table(rows, css_class="origin", raw_columns=("commands", "config differences"))


def robustness_parts(comparison: Comparison, ident: str) -> list[str]:
    parts = []
    if not comparison.robustness.empty:
        parts += ["<h3>Robustness to missing and noisy modalities: mean ± std over seeds</h3>",
                  html_table(comparison.robustness, table_id=f"robustness-{ident}", css_class="robustness"),
                  f'<p class="legend">{escape(robustness_caption(comparison))}</p>']
    if not comparison.cost.empty:
        parts += [
            "<h3>Cost: mean ± std over seeds</h3>",
            html_table(comparison.cost, table_id=f"cost-{ident}", css_class="cost"),
        ]
    return parts


def power_parts(comparison: Comparison, ident: str) -> list[str]:
    """Whether ≈ means equal or too few seeds: what these seeds detect and how many would detect the gap."""
    power = comparison.power_table()
    if power.empty:
        return []
    return [
        "<h3>≈: equal, or too few seeds?</h3>",
        html_table(power, table_id=f"power-{ident}", css_class="power"),
        f'<p class="legend">{escape(power_caption(comparison.correction))}</p>',
    ]


def data_set_section(comparison: Comparison, heading: bool) -> str:
    ident = slug(comparison.data_name)
    summary, marks = comparison.summary_tables()
    parts = [
        f'<h2 id="data-{ident}">Data set: {escape(comparison.data_name)}</h2>' if heading else "",
        f"<p>{len(comparison.runs)} completed runs, grouped by <b>{escape(comparison.grouped_by)}</b>.</p>",
        "<h3>Summary: mean ± std over seeds</h3>",
        html_table(summary, table_id=f"summary-{ident}", css_class="summary", marks=marks),
        f'<p class="legend">{escape(legend(comparison.correction))}</p>',
        f"<h3>{escape(lead_title(comparison.correction))}</h3>",
        html_table(comparison.lead_table(), table_id=f"leads-{ident}", css_class="leads"),
        *power_parts(comparison, ident),
        *robustness_parts(comparison, ident),
        "<h3>Plots</h3>",
        "".join(figure(p) for p in comparison.plots) or "<p>No plots.</p>",
        "<h3>Commands and config differences per group</h3>",
        origin_table(comparison),
        "<details><summary>Every metric: confidence intervals, gaps, tests and power</summary>",
        html_table(comparison.detail_table(), table_id=f"details-{ident}", css_class="details"),
        "</details>",
    ]
    return "\n".join(p for p in parts if p)


def runs_section(runs: pd.DataFrame) -> str:
    columns = [
        c for c in ("run_name", "status", "group", "seed", "data_name", "params", "fit_seconds", "command") if c in runs
    ]
    table = runs[columns].astype(object).where(runs[columns].notna(), "")
    return "<details><summary>All runs</summary>" + html_table(table, table_id="runs", css_class="runs") + "</details>"


def render(comparisons: list[Comparison], failures: pd.DataFrame, runs: pd.DataFrame, context: dict) -> str:
    sources = ", ".join(f"<code>{escape(str(p))}</code>" for p in context["paths"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mmfuse comparison: {escape(', '.join(c.data_name for c in comparisons))}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Fusion comparison</h1>",
        f'<p class="meta">{context["n_runs"]} runs from {sources}; written by '
        f"<code>{escape(context['command'])}</code> on {escape(context['when'])}.</p>",
    ]
    if len(comparisons) > 1:
        parts.append(f"<p>These runs come from {len(comparisons)} data sets; each is compared on its own.</p>")
    parts += [data_set_section(c, heading=len(comparisons) > 1) for c in comparisons]
    if not failures.empty:
        parts += [
            "<h2>Runs that did not complete (not averaged)</h2>",
            html_table(failures, table_id="failures", css_class="failures"),
        ]
    parts += ["<h2>Runs</h2>", runs_section(runs), "</body>", "</html>"]
    return "\n".join(parts) + "\n"

"""The comparison in the terminal: rich tables (cells are Text, so `[...]` in a label is never markup)."""
from __future__ import annotations

import shutil

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mmfuse.reporting.tables import BEST, TIED, lead_title, legend, power_caption

STYLE = {BEST: "bold green", TIED: "green"}


def console() -> Console:
    # piped output (CI logs, files) gets a readable width instead of rich's 80 columns
    return Console(width=shutil.get_terminal_size((160, 24)).columns, highlight=False)


def rich_table(df: pd.DataFrame, title: str | None = None, marks: pd.DataFrame | None = None,
               caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption, caption_justify="left", title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="left" if col in ("group", "run", "status", "error") else "right",
                         overflow="fold")
    for i, row in df.iterrows():
        cells = []
        for col in df.columns:
            style = STYLE.get(marks.at[i, col], "") if marks is not None and col in marks else ""
            cells.append(Text(str(row[col]), style=style))
        table.add_row(*cells)
    return table


def print_comparison(out: Console, title: str, summary: pd.DataFrame, marks: pd.DataFrame, leads: pd.DataFrame,
                     correction: str = "holm", power: pd.DataFrame | None = None) -> None:
    """The summary, the gaps to the best group with their tests, and for ≈ leads what more seeds would detect."""
    out.print(rich_table(summary, title=title, marks=marks))
    if len(leads) > 1:  # one group has nothing to be compared with
        out.print(rich_table(leads, title=lead_title(correction)))
    out.print(Text(legend(correction), style="dim"))
    if power is not None and not power.empty:
        out.print(rich_table(power, title="≈: equal, or too few seeds?"))
        out.print(Text(power_caption(correction), style="dim"))


def print_failures(out: Console, failures: pd.DataFrame) -> None:
    out.print(rich_table(failures, title=f"{len(failures)} run(s) did not complete (not averaged)"))

"""The comparison in the terminal: rich tables (cells are Text, so `[...]` in a label is never markup)."""
from __future__ import annotations

import shutil

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mmfuse.reporting.tables import BEST, LEGEND, TIED

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


def print_comparison(out: Console, title: str, summary: pd.DataFrame, marks: pd.DataFrame, leads: pd.DataFrame) -> None:
    out.print(rich_table(summary, title=title, marks=marks))
    if len(leads) > 1:  # one group has nothing to be compared with
        out.print(rich_table(leads, title="Behind the best group by, and is the gap significant?"))
    out.print(Text(LEGEND, style="dim"))


def print_failures(out: Console, failures: pd.DataFrame) -> None:
    out.print(rich_table(failures, title=f"{len(failures)} run(s) did not complete (not averaged)"))

"""A command's work, its errors said in one line and turned into its exit status."""
from __future__ import annotations

from typing import Callable

from mmfuse.errors import UserError, report


def run_command(prog: str, work: Callable[[], int]) -> int:
    """`work()`'s exit status; a UserError exits with its code, any other error with 1, each in one line."""
    try:
        return work()
    except UserError as e:
        report(prog, e)
        return e.code
    except Exception as e:  # noqa: BLE001 - one line, never a traceback (--verbose shows it)
        report(prog, e)
        return 1

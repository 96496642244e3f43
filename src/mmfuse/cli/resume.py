"""`mmfuse train resume=RUN_DIR [key=value ...]`: continue an interrupted run (or a sweep's unfinished jobs).

Exit status: 0 resumed and completed, 1 a resumed run failed, 2 bad input.
"""
from __future__ import annotations

from mmfuse.cli.command import run_command
from mmfuse.cli.process import load_training
from mmfuse.lifecycle.resume import PROG, parse, resume


def main(argv: list[str]) -> int:
    if {"--help", "-h"} & set(argv):
        print(__doc__)
        return 0

    def work() -> int:
        path, overrides = parse(argv)
        return resume(path, overrides, load_training())

    return run_command(PROG, work)

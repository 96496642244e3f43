"""`mmfuse reproduce RUN_DIR`: re-run a finished run (or a sweep's jobs) from its snapshot and compare the metrics.

The reproduction is a new run folder, never the original:
  <outputs>/reproductions/<date>_<time>_<microseconds>_<run name>/            for a run
  <outputs>/reproductions/<date>_<time>_<microseconds>_<sweep>/<job folder>/  for a sweep
where <outputs> is the folder holding the original's runs/ or sweeps/ (or --out).
Its run.json records `reproduced_from`.

Verdict: when the environment matches (package versions, thread count,
accelerator, device, precision) every metric must be equal bit for bit;
otherwise within --tolerance (absolute). Exit status: 0 all match, 1 a
metric differs or a reproduction failed, 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.command import run_command
from mmfuse.cli.process import load_training
from mmfuse.lifecycle.reproduce import PROG, reproduce


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", help="a run folder or a sweep folder")
    parser.add_argument(
        "--jobs", default=None, help="sweep jobs to reproduce, by job number: 0,3 (default: every completed job)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest absolute metric difference accepted when the environment differs (default: 1e-3)",
    )
    parser.add_argument(
        "--out", default=None, help="outputs folder to put reproductions/ under (default: the original's)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(
        PROG,
        lambda: reproduce(
            Path(args.path), load_training(), args.jobs, args.tolerance, Path(args.out) if args.out else None
        ),
    )

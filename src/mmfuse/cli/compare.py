"""`mmfuse compare`: group runs by what varies (not the seed), mean ± std over seeds, tests, plots, a report.

Reads only run.json and .hydra/ of each run folder; never training code.
Exit status: 0 compared, 1 nothing could be compared (no completed run) or
W&B logging failed, 2 bad arguments or no runs found.
"""
from __future__ import annotations

import argparse
import sys

from mmfuse.cli.command import run_command
from mmfuse.reporting.compare import PROG, run
from mmfuse.reporting.stats import CORRECTIONS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", help="sweep folders, run folders or globs (default: the latest sweep)")
    parser.add_argument(
        "--by",
        nargs="+",
        default=None,
        metavar="KEY",
        help="config keys to group by, e.g. fusion or fusion.name (default: the keys that vary, seed excluded)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        metavar="METRIC",
        help="metrics of the terminal tables (default: test/acc test/f1 val/acc_best); the files hold every metric",
    )
    parser.add_argument("--out", default=None, help="output folder (default: <first path>/comparison)")
    parser.add_argument(
        "--outputs", default="outputs", help="outputs folder whose latest sweep is the default (default: outputs)"
    )
    parser.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default="holm",
        help="multiple-comparison correction of the p-values against each metric's best group "
        "(default: holm, Holm-Bonferroni)",
    )
    parser.add_argument(
        "--log-wandb",
        action="store_true",
        help="also log the comparison as a W&B run (job_type=compare, the sweep's group; offline unless "
             "WANDB_MODE=online)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args, argv))

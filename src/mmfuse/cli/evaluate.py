"""`mmfuse eval RUN_DIR`: test a run's best (or last) checkpoint with the run's own config, overrides allowed.

Writes <run>/eval/<date>_<time>_<microseconds>/results.json (+ the config it
used), appends a summary to run.json's `evals` list, and logs a W&B run
(job_type=eval, the training run's group) when the run logged to W&B.
Exit status: 0 evaluated, 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.command import run_command
from mmfuse.cli.process import apply_process_settings
from mmfuse.lifecycle.evaluate import PROG, evaluate, print_results
from mmfuse.runs.folder import read_record


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a run folder (holding run.json, .hydra/ and checkpoints/)")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config, e.g. data.data_seed=1")
    parser.add_argument("--ckpt", choices=("best", "last"), default="best", help="which checkpoint (default: best)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the evaluation to W&B")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load the checkpoint with weights_only=False (runs pickled code: only for checkpoints you trust)",
    )
    return parser.parse_intermixed_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    apply_process_settings()

    def work() -> int:
        results = evaluate(
            Path(args.run_dir), args.ckpt, args.overrides, use_wandb=not args.no_wandb, trust=args.trust_checkpoint
        )
        print_results(results, read_record(Path(args.run_dir)).get("metrics") or {})
        return 0

    return run_command(PROG, work)

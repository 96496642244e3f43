"""`mmfuse export RUN_DIR`: the trained model as a self-contained, self-checked artifact.

Writes <run>/export/<date>_<time>_<microseconds>/ (or --out DIR, which must
not exist yet): model.pt2 (torch.export, default), model.onnx (--format
onnx or both; needs the onnx and onnxscript packages), example.pt and
mmfuse_artifact.json (inputs, class names, preprocessing, checks). The
program returns class probabilities (softmax; sigmoid per label for a
multilabel task; raw values for a regression).

Before anything is kept, the saved program is loaded back and run on test
batches (all test samples up to --check-samples, and a single sample); the
largest absolute difference from the checkpoint's PyTorch model must stay
within --tolerance, or nothing is written. model.onnx is checked the same
way in onnxruntime; without onnxruntime, --format onnx|both is refused unless
--no-check says to write model.onnx unchecked (the artifact and the printed
result then say "NOT CHECKED"). The folder is filled under a temporary name
and renamed at the end.
Exit status: 0 exported, 2 bad input, 1 the self-check failed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.command import run_command
from mmfuse.deploy import FORMATS

PROG = "mmfuse export"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a completed run folder (run.json, .hydra/, checkpoints/)")
    parser.add_argument("--ckpt", choices=("best", "last"), default="best", help="which checkpoint (default: best)")
    parser.add_argument("--format", choices=FORMATS, default="pt2", help="pt2 (torch.export, default), onnx, or both")
    parser.add_argument("--out", type=Path, help="artifact folder (default: <run>/export/<timestamp>/); must not exist")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest allowed |exported - PyTorch| (default 1e-4)"
    )
    parser.add_argument("--check-samples", type=int, default=64, help="test samples the self-check runs (default 64)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="write model.onnx without checking it in onnxruntime (the .pt2 program is always checked)",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load the checkpoint with weights_only=False (runs pickled code: only for checkpoints you trust)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def work() -> int:
        from mmfuse.deploy.export import export_run, print_result  # deferred: torch, so that --help is instant

        print_result(
            export_run(
                Path(args.run_dir),
                args.ckpt,
                args.format,
                args.out,
                args.trust_checkpoint,
                args.tolerance,
                args.check_samples,
                onnx_check=not args.no_check,
            )
        )
        return 0

    return run_command(PROG, work)

"""`mmfuse predict RUN_DIR_OR_ARTIFACT INPUT...`: class names and probabilities for raw files.

Inputs, one sample from the files given on the command line:
  mmfuse predict outputs/runs/<run> digit.png seven.wav
  mmfuse predict ARTIFACT image=digit.png audio=seven.wav   (MODALITY=FILE says which input it feeds)
A file's modality follows from its extension (images, WAV/FLAC/OGG audio,
.txt text, .npy arrays); a modality not given is absent for that sample
(the model's own missing-modality rule applies). Several files of one
modality and none of another make one sample per file.
Or many samples from a manifest (--input manifest.csv|.tsv|.jsonl): a
column per modality, named as in the training manifest or after the
modality; relative paths are relative to the manifest; an empty cell is an
absent modality; an `id` column is kept in the output. It is read by the
reader `data=manifest` uses (a byte-order mark is dropped).

RUN_DIR uses the run's newest export (<run>/export/*), exporting it first
when there is none. Prints a table; --output FILE.csv also writes every
class's probability (the file must not exist yet).
Exit status: 0 predicted, 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.command import run_command
from mmfuse.errors import UserError

PROG = "mmfuse predict"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="an export artifact folder (or its model.pt2), or a run folder")
    parser.add_argument("files", nargs="*", help="input files (FILE or MODALITY=FILE)")
    parser.add_argument("--input", type=Path, help="a manifest (.csv, .tsv, .jsonl) of samples")
    parser.add_argument(
        "--output", type=Path, help="write predictions and per-class probabilities to this .csv (new file)"
    )
    parser.add_argument("--top", type=int, default=3, help="classes shown per sample (default 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per forward pass (default 256)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="when a run has no export yet: load its checkpoint with weights_only=False",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


def run(args: argparse.Namespace) -> int:
    # deferred: torch and the terminal tables (scipy), once argv is parsed: `--help` and a bad option stay instant
    from rich.table import Table
    from rich.text import Text

    from mmfuse.deploy.predict import describe, predict, write_csv
    from mmfuse.reporting.terminal import console

    if args.output is not None and args.output.exists():
        raise UserError(f"--output {args.output} already exists; choose a new file (nothing is overwritten)")
    if args.output is not None and not args.output.parent.is_dir():
        raise UserError(f"--output {args.output}: folder {args.output.parent} does not exist")
    artifact, names, probs = predict(args.model, args.files, args.input, args.batch_size, args.trust_checkpoint)
    rows = describe(probs, artifact.meta, args.top)
    source = artifact.meta["source"]
    table = Table(title=f"predictions of {source.get('run_name')} ({source.get('fusion')})", title_justify="left")
    for col in ("sample", "prediction", "probability", "next"):
        table.add_column(col, justify="right" if col == "probability" else "left")
    for name, row in zip(names, rows):
        probability = "" if row["probability"] is None else f"{row['probability']:.3f}"
        table.add_row(Text(name), Text(row["prediction"]), probability, Text(row["others"]))
    console().print(table)
    if args.output is not None:
        write_csv(args.output, names, rows, artifact.meta)
        print(f"written to {args.output}")
    return 0

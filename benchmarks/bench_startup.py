"""Start-up: launch to first training step phase by phase, `--help` / `--cfg job`, and the exit.

Each command runs as a user runs it (a fresh `python -m mmfuse` process).
Launch to first step is measured from just before the process starts to the
wall-clock time the run records for its first training batch (run.json
timing.first_step_at), for the synthetic default run (1 epoch, robustness off)
with the default loggers (W&B offline + CSV) and with `logger=csv`. The run
records where its start-up went (timing.startup, see
mmfuse/tracking/startup.py); the table splits launch to first step into:

  interpreter       process start, Python, `mmfuse.cli` (launch -> cli)
  hydra compose     Hydra, the config and its run folder (cli -> composed)
  imports           torch, Lightning, torchmetrics, the model zoo (composed -> imported)
  run record        run.json started, git state, versions (imported -> record)
  data              the datamodule and the loggers built (the W&B run starts, in a thread), data set up
                    (record -> data)
  model             encoders, fusion, head (data -> model)
  W&B start         callbacks, then what is left of the W&B start (model -> wandb)
  trainer           Lightning's Trainer and fit until the first batch (wandb -> first step)

The same runs give the time from the run's end (timing.ended_at) to the
process's end, for `python -m mmfuse` (which skips the interpreter's module
teardown, see mmfuse/cli/process.py) and for `mmfuse.cli.main` called from a
plain script (the interpreter's usual exit). Figures are medians; runs of the
two logger settings alternate so that load from elsewhere falls on both.
Targets: --help and --cfg job under 1.5 s; launch to first step <= 5 s with
W&B offline, <= 2.5 s with logger=csv (warm file cache, 2 cores). The last line
measures what no Lightning run can skip: importing torch and torch._dynamo
(which Lightning 2.6 imports unconditionally, see import_floor).

    python benchmarks/bench_startup.py [--repeats 5] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
PLAIN_EXIT = ["-c", "import sys; from mmfuse.cli import main; sys.exit(main(sys.argv[1:]))"]
# the synthetic defaults, one epoch, no robustness evaluation: what happens before the first step is the default run's
RUN = ["trainer.max_epochs=1", "+trainer.limit_train_batches=5", "+trainer.limit_val_batches=2", "test=false",
       "evaluation.robustness=false"]
LOGGERS = {"W&B offline + CSV (default)": ("logger=many", 5.0), "logger=csv": ("logger=csv", 2.5)}
# (row, mark that ends it); the first phase starts at the launch
PHASES = [("interpreter", "cli"), ("hydra compose", "composed"), ("imports", "imported"), ("run record", "record"),
          ("data", "data"), ("model", "model"), ("W&B start", "wandb"), ("trainer", "first_step")]


def wall(args: list[str], entry: list[str] = ("-m", "mmfuse")) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, *entry, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"mmfuse {' '.join(args)} failed: {done.stderr[-2000:]}")
    return elapsed


def start_up(folder: Path, logger: str, entry: list[str] = ("-m", "mmfuse")) -> dict[str, float]:
    """Seconds of each phase, launch to first step (`total`), the whole run and the run's end to process exit."""
    launched = time.time()
    wall(["train", f"paths.output_dir={folder}", logger, *RUN], entry)
    exited = time.time()
    timing = json.loads(next(folder.glob("runs/*/run.json")).read_text())["timing"]
    marks = {**timing.get("startup", {}), "first_step": timing["first_step_at"]}
    out, before = {}, launched
    for row, mark in PHASES:
        if mark in marks:  # a mark missing (an older mmfuse) folds its phase into the next
            out[row], before = marks[mark] - before, marks[mark]
    out["total"] = timing["first_step_at"] - launched
    out["run"], out["exit"] = timing["wall_seconds"], exited - timing["ended_at"]
    return out


def import_floor() -> tuple[float, float]:
    """Seconds to import torch, then torch._dynamo, in a fresh interpreter: what any Lightning run imports first.

    Lightning 2.6 imports torch._dynamo whatever the run uses (lightning_fabric/__init__.py imports
    lightning_fabric.wrappers, which imports torch._dynamo.OptimizedModule); torch itself no longer does.
    """
    code = ("import time; t = time.perf_counter(); import torch; u = time.perf_counter(); import torch._dynamo; "
            "print(u - t, time.perf_counter() - u)")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    torch_s, dynamo_s = map(float, done.stdout.split())
    return torch_s, dynamo_s


def phase_table(label: str, runs: list[dict[str, float]], target: float) -> list[str]:
    total = statistics.median(r["total"] for r in runs)
    lines = [f"launch to first train step, {label}: median of {len(runs)} runs",
             f"  {'phase':<16} {'seconds':>8} {'share':>6}"]
    for row, _ in PHASES:
        if all(row in r for r in runs):
            seconds = statistics.median(r[row] for r in runs)
            lines.append(f"  {row:<16} {seconds:>8.2f} {seconds / total:>6.0%}")
    verdict = "ok" if total <= target else "over"
    lines.append(f"  {'total':<16} {total:>8.2f}   target <= {target} s: {verdict} "
                 f"(whole 1-epoch run {statistics.median(r['run'] for r in runs):.1f} s)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of --help / --cfg job")
    parser.add_argument("--runs", type=int, default=3, help="training runs per logger setting")
    args = parser.parse_args()
    wall(["train", "--help"])  # warm the file cache
    rows = []
    for label, command in (
        ("mmfuse train --help", ["train", "--help"]),
        ("mmfuse train --cfg job", ["train", "--cfg", "job"]),
        ("mmfuse --help", ["--help"]),
    ):
        seconds = statistics.median(wall(command) for _ in range(args.repeats))
        rows.append((label, seconds, 1.5 if "train" in label else None))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in LOGGERS}
    plain: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        start_up(Path(tmp) / "warm", LOGGERS["logger=csv"][0])  # the training imports into the file cache
        for i in range(args.runs):
            for label, (logger, _) in LOGGERS.items():
                runs[label].append(start_up(Path(tmp) / f"{i}-{logger.split('=')[-1]}", logger))
            plain.append(start_up(Path(tmp) / f"{i}-plain", LOGGERS["logger=csv"][0], PLAIN_EXIT))
    print(f"median of {args.repeats} runs")
    print(f"{'command':<28} {'seconds':>8}  target")
    for label, seconds, target in rows:
        verdict = "" if target is None else f"< {target} s: {'ok' if seconds < target else 'OVER'}"
        print(f"{label:<28} {seconds:>8.2f}  {verdict}")
    fast = statistics.median(r["exit"] for rs in runs.values() for r in rs)
    slow = statistics.median(r["exit"] for r in plain)
    print(
        f"{'run end to process exit':<28} {fast:>8.2f}  (python -m mmfuse; {slow:.2f} s with the interpreter's "
        f"usual teardown: {slow / fast:.0f}x)"
    )
    for label, (_, target) in LOGGERS.items():
        print()
        print("\n".join(phase_table(label, runs[label], target)))
    floors = [import_floor() for _ in range(args.runs)]
    torch_s, dynamo_s = (statistics.median(f[i] for f in floors) for i in (0, 1))
    print(
        f"\nimport floor of any Lightning run (fresh interpreter, median of {args.runs}): torch {torch_s:.2f} s + "
        f"torch._dynamo {dynamo_s:.2f} s = {torch_s + dynamo_s:.2f} s, before the config, the data or the model"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

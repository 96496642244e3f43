"""Start-up: `mmfuse train --help` and `--cfg job` wall time, and launch to first training step.

Each command runs as a user runs it (a fresh `python -m mmfuse` process);
figures are medians of `--repeats` runs. Launch to first step is measured
from just before the process starts to the wall-clock time the run records
for its first training batch (run.json timing.first_step_at), with the
default loggers (W&B offline + CSV) and a tiny synthetic run. The same runs
give the time from the run's end (timing.ended_at) to the process's end,
for `python -m mmfuse` (which skips the interpreter's module teardown, see
mmfuse/fastexit.py) and for `mmfuse.cli.main` called from a plain script
(the interpreter's usual exit).
Targets: --help and --cfg job under 1.5 s.

    python benchmarks/bench_startup.py [--repeats 5]
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


def wall(args: list[str], entry: list[str] = ("-m", "mmfuse")) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, *entry, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"mmfuse {' '.join(args)} failed: {done.stderr[-2000:]}")
    return elapsed


def first_step(folder: Path, entry: list[str] = ("-m", "mmfuse")) -> tuple[float, float, float]:
    """(launch to first training step, whole run, run's end to process exit) in seconds."""
    t = time.time()
    wall(["train", f"paths.output_dir={folder}", "data.n_samples=600", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"],
         entry)
    end = time.time()
    timing = json.loads(next(folder.glob("runs/*/run.json")).read_text())["timing"]
    return timing["first_step_at"] - t, timing["wall_seconds"], end - timing["ended_at"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wall(["train", "--help"])  # warm the file cache
    rows = []
    for label, command in (("mmfuse train --help", ["train", "--help"]), ("mmfuse train --cfg job", ["train", "--cfg", "job"]),
                           ("mmfuse --help", ["--help"])):
        seconds = statistics.median(wall(command) for _ in range(args.repeats))
        rows.append((label, seconds, 1.5 if "train" in label else None))
    steps, plain = [], []
    for _ in range(max(1, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as tmp:
            steps.append(first_step(Path(tmp) / "fast"))
            plain.append(first_step(Path(tmp) / "plain", PLAIN_EXIT))
    print(f"median of {args.repeats} runs (launch to first step: {len(steps)} runs)")
    print(f"{'command':<28} {'seconds':>8}  target")
    for label, seconds, target in rows:
        verdict = "" if target is None else f"< {target} s: {'ok' if seconds < target else 'OVER'}"
        print(f"{label:<28} {seconds:>8.2f}  {verdict}")
    launch = statistics.median(s for s, _, _ in steps)
    print(f"{'launch to first train step':<28} {launch:>8.2f}  (W&B offline + CSV, synthetic 600 samples; "
          f"whole 1-epoch run {statistics.median(w for _, w, _ in steps):.1f} s)")
    fast, slow = statistics.median(e for _, _, e in steps), statistics.median(e for _, _, e in plain)
    print(f"{'run end to process exit':<28} {fast:>8.2f}  (python -m mmfuse; {slow:.2f} s with the interpreter's "
          f"usual teardown: {slow / fast:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

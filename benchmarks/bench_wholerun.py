"""Whole-run efficiency: what a user waits for (launch to exit) over the training it buys (fit time).

Two measurements, each as a user runs it (fresh `python -m mmfuse` processes, W&B offline, the default loggers):

- one default synthetic run, `mmfuse train trainer.max_epochs=10` (robustness on, as by default):
  launch-to-exit wall seconds / the run's fit seconds (run.json timing.fit_seconds). Target <= 1.25.
- the demo, `make demo`'s two commands (`mmfuse train experiment=fusion_comparison`: 36 jobs, two at a time;
  then `mmfuse compare`): the sweep's sum over jobs of train() wall / sum of fit (run.json timing), and the
  demo's wall time from launch to the compare's exit. Target < 120 s on 2 cores.

    python benchmarks/bench_wholerun.py [--skip-demo]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def mmfuse(*args: str) -> float:
    """Seconds from launch to exit of `python -m mmfuse ARGS`."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmfuse", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"mmfuse {' '.join(args)} failed: {done.stderr[-2000:]}")
    return seconds


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("run.json"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-demo", action="store_true", help="only the single run")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "single"
        launched = time.time()
        wall = mmfuse(
            "train", f"paths.output_dir={single}", "trainer.max_epochs=10", "trainer.enable_progress_bar=false"
        )
        (record,) = records(single)
        timing = record["timing"]
        fit = timing["fit_seconds"]
        rows.append(("default run, 10 epochs, launch to exit", wall, fit, wall / fit, "<= 1.25", wall / fit <= 1.25))
        detail = (
            f"  in that run: launch to first step {timing['first_step_at'] - launched:.2f} s, fit {fit:.2f} s, "
            f"test {timing['test_seconds']:.2f} s, robustness {timing['robustness_seconds']:.2f} s, "
            f"run end to exit {launched + wall - timing['ended_at']:.2f} s"
        )
        if not args.skip_demo:
            demo = Path(tmp) / "demo"
            t = time.perf_counter()
            mmfuse("train", "experiment=fusion_comparison", f"paths.output_dir={demo}")
            sweep_wall = time.perf_counter() - t
            mmfuse("compare", str(next((demo / "sweeps").iterdir())))
            demo_wall = time.perf_counter() - t
            jobs = records(demo)
            job_wall = sum(r["timing"]["wall_seconds"] for r in jobs)
            job_fit = sum(r["timing"]["fit_seconds"] for r in jobs)
            robust = sum("robustness" in r for r in jobs)
            rows.append(
                (
                    f"demo sweep, {len(jobs)} jobs: sum of job wall / sum of fit",
                    job_wall,
                    job_fit,
                    job_wall / job_fit,
                    "reported",
                    None,
                )
            )
            rows.append(
                ("make demo (sweep + compare), launch to exit", demo_wall, None, None, "< 120 s", demo_wall < 120)
            )
    print(f"{'measurement':<52} {'wall s':>8} {'fit s':>8} {'ratio':>6}  target")
    for label, w, f, ratio, target, ok in rows:
        verdict = target if ok is None else f"{target}: {'ok' if ok else 'over'}"
        print(
            f"{label:<52} {w:>8.1f} {'' if f is None else f'{f:.1f}':>8} {'' if ratio is None else f'{ratio:.3f}':>6}"
            f"  {verdict}"
        )
    print(detail)
    if not args.skip_demo:
        print(
            f"  demo: the sweep took {sweep_wall:.1f} s and compare {demo_wall - sweep_wall:.1f} s; "
            f"{robust} of {len(jobs)} jobs recorded robustness"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

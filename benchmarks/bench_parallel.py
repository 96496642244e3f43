"""Parallel sweeps: an 8-job sweep with hydra/launcher=joblib vs the same sweep run one job after another.

Both sweeps run every job with one torch thread (joblib: set automatically,
cores / parallel jobs; sequential: threads=1), so every job does exactly the
same arithmetic and the per-run metrics must be identical; the benchmark
checks that, then prints the wall-time ratio (target >= 1.6x on 2 cores). Each
launcher's sweep runs twice, in the order parallel, sequential, sequential,
parallel, so a drift in the machine's speed favours neither.
A third line gives the sequential sweep with torch's default threads (all
cores per job), the other way to use the machine.

    python benchmarks/bench_parallel.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
SWEEP = ["fusion=concat,late,tensor,gated", "seed=0,1", "data.modalities=[image,tabular]", "data.n_samples=3000",
         "trainer.max_epochs=8", "callbacks=minimal", "logger=csv", "evaluation.robustness=false",
         "trainer.enable_progress_bar=false"]


def sweep(folder: Path, extra: list[str]) -> tuple[float, dict[str, dict]]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmfuse", "train", "-m", *SWEEP, *extra, f"paths.output_dir={folder}"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"sweep failed: {done.stderr[-3000:]}")
    metrics = {}
    for path in folder.glob("sweeps/*/*/run.json"):
        rec = json.loads(path.read_text())
        key = f"{rec['choices']['fusion']}-s{rec['config']['seed']}"
        metrics[key] = {k: v for k, v in rec["metrics"].items() if k.startswith(("test/", "val/"))}
    return elapsed, metrics


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # parallel, sequential, sequential, parallel: this machine's speed drifts over minutes, and the order
        # gives neither launcher the faster stretch (one pair in one order once measured 1.50x, then 1.63x)
        par1_s, parallel = sweep(tmp / "parallel1", ["hydra/launcher=joblib"])
        seq1_s, sequential = sweep(tmp / "sequential1", ["threads=1"])
        seq2_s, sequential2 = sweep(tmp / "sequential2", ["threads=1"])
        par2_s, parallel2 = sweep(tmp / "parallel2", ["hydra/launcher=joblib"])
        default_s, _ = sweep(tmp / "sequential_all_cores", [])
    assert len(parallel) == len(sequential) == 8, (len(parallel), len(sequential))
    same = parallel == sequential == sequential2 == parallel2
    parallel_s, sequential_s = (par1_s + par2_s) / 2, (seq1_s + seq2_s) / 2
    cores = os.cpu_count()
    print(f"8-job sweep (4 strategies x 2 seeds, synthetic 3000 samples, 8 epochs) on {cores} cores; mean of two "
          f"sweeps each, run parallel, sequential, sequential, parallel ({par1_s:.1f}, {seq1_s:.1f}, {seq2_s:.1f}, "
          f"{par2_s:.1f} s)")
    print(f"{'launcher':<44} {'seconds':>8} {'speed-up':>9}")
    print(f"{'basic, one job at a time, threads=1':<44} {sequential_s:>8.1f} {1.0:>8.2f}x")
    print(
        f"{'basic, one job at a time, torch default threads':<44} {default_s:>8.1f} {sequential_s / default_s:>8.2f}x"
    )
    print(
        f"{'joblib, parallel, 1 thread per job':<44} {parallel_s:>8.1f} {sequential_s / parallel_s:>8.2f}x  "
        f"target >= 1.6x: {'ok' if sequential_s / parallel_s >= 1.6 else 'OVER'}"
    )
    print(f"per-run metrics identical between the parallel and the threads=1 sequential sweeps: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

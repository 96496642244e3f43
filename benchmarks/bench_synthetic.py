"""How fast is the synthetic benchmark generated? Target: 10,000 samples of all four modalities in under 2 s.

Prints the best of 3 generation times for each interaction and its ratio to
the 2 s budget (budget / time; > 1 means within the target).

    python benchmarks/bench_synthetic.py
"""
from __future__ import annotations

import sys
import time

import torch

from mmfuse.data.synthetic import INTERACTIONS, SyntheticDataModule

BUDGET_S = 2.0

if __name__ == "__main__":
    torch.set_num_threads(2)
    worst = 0.0
    for interaction in INTERACTIONS:
        for representation in ("waveform", "spectrogram"):
            times = []
            for _ in range(3):
                dm = SyntheticDataModule(interaction=interaction, n_samples=10_000, audio_representation=representation)
                t = time.perf_counter()
                dm.setup()
                times.append(time.perf_counter() - t)
            best = min(times)
            worst = max(worst, best)
            print(f"{interaction:10s} audio={representation:11s} 10,000 samples in {best:.3f} s  "
                  f"budget/time = {BUDGET_S / best:5.1f}x")
    print(f"slowest: {worst:.3f} s ({'OK' if worst < BUDGET_S else 'OVER'} the {BUDGET_S} s target)")
    sys.exit(0 if worst < BUDGET_S else 1)

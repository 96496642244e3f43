"""Wall-clock marks of a run's start-up, recorded in run.json as timing.startup.

A user waits from the launch to the first training step; these marks say
where that time goes (Hydra's compose, the heavy imports, data, model, W&B,
trainer) without a profiler. `python benchmarks/bench_startup.py` turns them
into a per-phase table. Kept free of heavy imports: the command line marks
its first phases before torch is imported.
"""
from __future__ import annotations

import time

_marks: dict[str, float] = {}


def mark(name: str) -> None:
    """Note that the phase ending at `name` ended now (time.time(), as timing.first_step_at)."""
    _marks[name] = time.time()


def take() -> dict[str, float]:
    """The marks so far, in order, and a clean slate: a joblib worker runs several jobs one after another."""
    out = dict(_marks)
    _marks.clear()
    return out

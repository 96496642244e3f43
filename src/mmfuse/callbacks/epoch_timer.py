"""Wall time of each training epoch, for the run record's complexity and timing."""
from __future__ import annotations

import time

import pytorch_lightning as pl


class EpochTimer(pl.Callback):
    """Wall time of each training epoch: its training batches (`seconds`), and start to next start (`periods`:
    training, validation, checkpoints and logging, everything an epoch costs)."""

    def __init__(self):
        self.seconds: list[float] = []
        self.starts: list[float] = []
        self._start = 0.0
        self.first_step_at: float | None = None  # wall clock (time.time()) of the first training batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self.starts.append(self._start)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer, pl_module) -> None:
        self.starts.append(time.perf_counter())

    @property
    def periods(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]

"""The progress bar: Lightning's rich bar, fed at the rate it draws instead of at every batch."""
from __future__ import annotations

import math
import time

from pytorch_lightning.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's `RichProgressBar`, updated at most `refresh_rate` times a second, drawn in the training thread.

    Lightning's bar updates its task and its metrics at every batch (metric `.item()` calls and a locked task
    update, about 0.4 ms) and asks its refresh thread for a redraw each time; a redraw is rich rendering the whole
    table while holding the interpreter lock, 1.4 ms alone and 4-5 ms while a training step competes for the lock,
    at up to `refresh_rate` per second. At refresh_rate=10 the redraws alone took 3.3 % of the synthetic
    benchmark's training time (benchmarks/bench_overhead.py, Live.refresh timed in the run). Here the end of a
    batch updates the bar only when 1/refresh_rate seconds have passed since its last update, and always at a
    loop's last batch, so the bar shows the same counts, speed and metrics, at the rate it can show them. The
    update is drawn once, at once, in the training thread (no refresh thread: see `_init_progress`).
    """

    def __init__(self, refresh_rate: int = 1, **kwargs):
        if not (isinstance(refresh_rate, int) and refresh_rate >= 0):
            raise ValueError(f"callbacks.rich_progress_bar.refresh_rate={refresh_rate!r}; expected an integer >= 0 "
                             "(updates a second; 0 turns the bar off)")
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.clock = time.monotonic  # seconds; the overhead benchmark swaps in one that leaves out its plain loop
        self._next_update = -math.inf
        self._batch_update = False  # inside a batch end's update: redraws wait for its end
        self._redraw = False  # a redraw was asked for meanwhile

    def _init_progress(self, trainer) -> None:
        super()._init_progress(trainer)
        # Lightning's bar draws from a thread of its own. A redraw holds the interpreter lock for 1.4 ms, and while a
        # training step runs, every lock hand-over between the two threads waits (up to the 5 ms switch interval):
        # 4-5 ms of the step's time a redraw. Updates come at most refresh_rate times a second anyway, so the
        # thread goes and `refresh` draws at once, in the caller's thread, as Lightning's bar does in notebooks.
        live = getattr(self.progress, "live", None)
        thread = getattr(live, "_refresh_thread", None)
        if thread is not None and hasattr(thread, "stop"):
            thread.stop()  # it ends at its next look (no join: that would wait out its 1/refresh_rate sleep)
            live._refresh_thread = None

    def refresh(self, hard: bool = False) -> None:
        if not self.progress:
            return
        if self._batch_update:
            self._redraw = True  # drawn once, at the end of the update
            return
        # Lightning's other redraws (a task added, reset or hidden; metrics at an epoch's end: 2-9 ms each, six an
        # epoch, most just after a loop's last batch drew) happen only when an update would be due; one that waits
        # shows with the next update, or when the bar stops (rich draws the final state then)
        if self.clock() >= self._next_update:
            self.progress.refresh()

    def _update_at_batch_end(self, update, *args) -> None:
        """Lightning's batch-end update, drawn once: it asks for a redraw after the counts and again after the
        metrics, 2 ms each."""
        self._batch_update, self._redraw = True, False
        try:
            update(*args)
        finally:
            self._batch_update = False
        if self._redraw:
            self._redraw = False
            self.progress.refresh()

    def _due(self, batch_idx: int, total: float) -> bool:
        """Whether this batch's end updates the bar: its interval has passed, or it is the loop's last batch."""
        if not self.is_enabled:
            return False
        now = self.clock()
        if now >= self._next_update or batch_idx + 1 >= total:
            self._next_update = now + 1.0 / self.refresh_rate
            return True
        return False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # no task yet (a resumed epoch's first batch): Lightning's method creates it
        if self.train_progress_bar_id is None or self._due(batch_idx, self.total_train_batches):
            self._update_at_batch_end(super().on_train_batch_end, trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or self._due(batch_idx, self.total_val_batches_current_dataloader):
            self._update_at_batch_end(super().on_validation_batch_end, trainer, pl_module, outputs, batch, batch_idx,
                                      dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._due(batch_idx, self.total_test_batches_current_dataloader):
            self._update_at_batch_end(super().on_test_batch_end, trainer, pl_module, outputs, batch, batch_idx,
                                      dataloader_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._due(batch_idx, self.total_predict_batches_current_dataloader):
            self._update_at_batch_end(super().on_predict_batch_end, trainer, pl_module, outputs, batch, batch_idx,
                                      dataloader_idx)

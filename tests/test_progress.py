"""The progress bar is fed at the rate it draws, and always shows a loop's last batch."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from mmfuse.callbacks.progress import ProgressBar


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(n):
    return DataLoader(TensorDataset(torch.randn(n, 4)), batch_size=1)


def test_bar_updates_once_per_interval_and_at_each_loops_last_batch(tmp_path):
    bar = ProgressBar(refresh_rate=2)  # an update at most every 0.5 s
    ticks = iter(range(10_000))
    bar.clock = lambda: 0.2 * next(ticks)  # each batch end is 0.2 s after the one before
    train_updates = []
    original = bar._update

    def counting(progress_bar_id, current, visible=True, hard=False):
        if progress_bar_id == bar.train_progress_bar_id:
            train_updates.append(current)
        original(progress_bar_id, current, visible, hard)

    bar._update = counting
    trainer = pl.Trainer(max_epochs=2, callbacks=[bar], logger=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(Tiny(), loader(10), loader(4))
    # clock 0, 0.2, 0.4, ... per batch end: updates at 0, 0.6, 1.2, ... (every 3rd batch) plus each epoch's last batch
    per_epoch = [1, 4, 7, 10]
    assert train_updates[:4] == per_epoch, train_updates
    assert train_updates.count(10) == 2  # both epochs end with the full count shown
    assert len(train_updates) < 2 * 10 / 2  # far fewer updates than batches
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert task.completed == task.total == 10
    assert "train/loss" in bar.get_metrics(trainer, trainer.lightning_module)


def test_bar_rejects_a_bad_rate():
    with pytest.raises(ValueError, match="refresh_rate"):
        ProgressBar(refresh_rate=-1)
    with pytest.raises(ValueError, match="refresh_rate"):
        ProgressBar(refresh_rate=0.5)


def test_bar_draws_each_update_once_in_the_training_thread_with_no_refresh_thread(tmp_path):
    import threading

    bar = ProgressBar(refresh_rate=2)
    ticks = iter(range(10_000))
    bar.clock = lambda: float(next(ticks))  # a second between batch ends: every batch end updates the bar
    draws, per_update = [], []

    class Spy(pl.Callback):
        def on_train_start(self, trainer, pl_module):  # after the bar's own on_train_start built its display
            live = bar.progress.live
            assert live._refresh_thread is None  # no second thread competing with training for the interpreter lock
            original = live.refresh

            def counting():
                draws.append(threading.current_thread())
                original()

            live.refresh = counting

    batch_end = bar.on_train_batch_end

    def counted(*args):
        before = len(draws)
        batch_end(*args)
        per_update.append(len(draws) - before)

    bar.on_train_batch_end = counted
    trainer = pl.Trainer(max_epochs=1, callbacks=[bar, Spy()], logger=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(Tiny(), loader(10), loader(4))
    # Lightning's update asks for two redraws (counts, then metrics): drawn once, when it happens
    assert per_update == [1] * 10, per_update
    assert set(draws) == {threading.main_thread()}


def test_lightnings_other_redraws_wait_for_an_update_to_be_due(tmp_path):
    bar = ProgressBar(refresh_rate=1)
    bar.clock = lambda: 0.0  # time stands still: after the first update nothing is due but loops' last batches
    asked, drawn = [], []

    class Spy(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            live = bar.progress.live
            original = live.refresh
            live.refresh = lambda: (drawn.append(bar._asking), original())

    bar._asking = False
    original_refresh = bar.refresh

    def refresh(hard=False):  # Lightning's own redraw requests (task hidden, metrics updated, ...)
        asking = not bar._batch_update
        asked.append(asking)
        bar._asking = asking
        try:
            original_refresh(hard)
        finally:
            bar._asking = False

    bar.refresh = refresh
    trainer = pl.Trainer(max_epochs=2, callbacks=[bar, Spy()], logger=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(Tiny(), loader(10), loader(4))
    assert asked.count(True) >= 6  # Lightning asked for redraws outside batch updates, every epoch
    assert drawn.count(True) == 1, drawn  # only the very first was drawn: the bar had not updated yet
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert task.completed == task.total == 10  # loops' last batches still update and draw

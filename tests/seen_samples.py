"""A callback that writes down which training samples each process stepped on (the DDP test reads it back).

Built by Hydra from the command line (`+callbacks.seen._target_=seen_samples.SeenSamples`) in the job's process,
which knows its run folder, and pickled into every spawned DDP process; each process writes `seen_rank<R>.json`
into the run folder when fitting ends: one list per optimizer step of the samples' fingerprints (their tabular
features summed: distinct for the synthetic data).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl


class SeenSamples(pl.Callback):
    def __init__(self):
        from hydra.core.hydra_config import HydraConfig

        self.out_dir = HydraConfig.get().runtime.output_dir
        self.steps: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append(batch["tabular"].double().sum(1).tolist())

    def on_fit_end(self, trainer, pl_module):
        Path(self.out_dir, f"seen_rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))

"""Shared machinery of mmfuse's LightningDataModules.

The batch contract: `dict[str, Tensor]` with one key per modality, `label`,
`present` (B, M) bool (True where a modality is observed, columns in the
order of `modalities`), and `<modality>_mask` (B, T) for padded sequences.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pytorch_lightning as pl
import torch

from mmfuse.data.batches import TensorDictDataset, batch_loader
from mmfuse.data.spec import TASKS, ModalitySpec


class MultimodalDataModule(pl.LightningDataModule):
    """Base class: subclasses fill `self.splits` with TensorDictDatasets in `_build()`."""

    def __init__(self, batch_size: int = 128, eval_batch_size: int | None = None, pin_memory: bool | None = None, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.splits: dict[str, TensorDictDataset] = {}
        self._fingerprint: str | None = None

    # --- what subclasses provide -------------------------------------------------
    name: str = "multimodal"
    task: str = "multiclass"
    num_classes: int = 0
    class_names: list[str] | None = None

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        raise NotImplementedError

    def _build(self) -> dict[str, TensorDictDataset]:
        raise NotImplementedError

    def fingerprint_params(self) -> dict[str, Any]:
        """Parameters that, with the tensors, identify the data exactly."""
        return {}

    def preprocessing(self) -> dict[str, dict[str, Any]]:
        """Per modality, how one raw input becomes the model's tensor (`mmfuse export` stores it; `predict` applies it).

        Readers: image, audio, text, hf_text, numbers (see mmfuse.deploy.preprocess);
        the default is `array`: a saved .npy of the spec's shape, already preprocessed.
        """
        self.setup()
        return {m: {"reader": "array", "shape": list(s.shape), "dtype": s.dtype} for m, s in self.modalities.items()}

    # --- Lightning hooks ---------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self._build()
            for split, ds in self.splits.items():
                if len(ds) == 0:
                    raise ValueError(f"data split '{split}' of data set '{self.name}' is empty; check the split sizes")
            if self.task not in TASKS:
                raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def _shard(self) -> dict[str, int]:
        """This process's rank and the number of processes (DDP: each takes its share of every batch)."""
        trainer = getattr(self, "trainer", None)
        world = getattr(trainer, "world_size", 1) if trainer is not None else 1
        return {"rank": trainer.global_rank, "world": world} if world > 1 else {}

    def train_dataloader(self):
        return batch_loader(self.splits["train"], self.batch_size, shuffle=True, seed=self.seed, pin_memory=self.pin_memory,
                            **self._shard())

    def val_dataloader(self):
        return batch_loader(self.splits["val"], self.eval_batch_size, shuffle=False, pin_memory=self.pin_memory, **self._shard())

    def test_dataloader(self):
        return batch_loader(self.splits["test"], self.eval_batch_size, shuffle=False, pin_memory=self.pin_memory,
                            **self._shard())

    # --- records -----------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 over the data's parameters and every tensor of every split."""
        if self._fingerprint is None:
            self.setup()
            h = hashlib.sha256(json.dumps(self.fingerprint_params(), sort_keys=True, default=str).encode())
            for split in sorted(self.splits):
                for key in sorted(self.splits[split].tensors):
                    t = self.splits[split].tensors[key].contiguous()
                    h.update(f"{split}/{key}/{t.dtype}/{tuple(t.shape)}".encode())
                    h.update(t.numpy())  # the buffer itself: no extra copy of large data
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        self.setup()
        return {
            "name": self.name,
            "task": self.task,
            "num_classes": self.num_classes,
            "modalities": {k: v.to_dict() for k, v in self.modalities.items()},
            "sizes": {k: len(v) for k, v in self.splits.items()},
        }

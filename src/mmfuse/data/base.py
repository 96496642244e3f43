"""The contract every mmfuse DataModule keeps, built-in or the user's own: `MultimodalDataModule`."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pytorch_lightning as pl
import torch

from mmfuse.data.batches import TensorDictDataset, batch_loader
from mmfuse.data.readers import SampleErrors
from mmfuse.data.spec import TASKS, ModalitySpec


class MultimodalDataModule(pl.LightningDataModule):
    """Base class of mmfuse's LightningDataModules; subclass it to bring your own data set.

    A subclass provides:

    - `build_splits() -> {"train", "val", "test": TensorDictDataset}`: every
      sample in memory, called once by `setup()`. Each split holds the batch
      contract's tensors with a shared first dimension N:
      one tensor per modality (N, *spec.shape), `label` ((N,) int64 class
      ids; (N, C) 0/1 int64 for multilabel; (N,) float32 for regression),
      `present` (N, M) bool in the order of `modalities` (True where the
      modality is observed; an absent one holds zeros), and
      `<modality>_mask` (N, T) bool for a spec with `has_mask`.
    - `modalities` (a property): name -> `ModalitySpec` (kind, shape, dtype,
      vocab size / sample rate). Encoders and heads are sized from it.
    - `task` ("multiclass", "multilabel" or "regression"), `num_classes`
      (1 for regression), optionally `class_names` and `name` (the data
      set's name in records and W&B tags): class attributes, or set them
      in `build_splits()` when the data decide them.
    - `fingerprint_params()`: the parameters that, with the tensors,
      identify the data; `fingerprint()` (recorded in run.json) hashes both.
    - optionally `preprocessing()`, how `mmfuse predict` turns a raw input
      into the tensor (default: a .npy array of the spec's shape).

    It inherits the loaders (whole batches by one indexing call; each
    process's share in DDP), `describe()`, `fingerprint()`, and the error
    policy: call `self.errors(reason, message)` for a bad sample, which
    raises under `on_error=raise` and, under `on_error=skip`, counts it in
    `skipped` (recorded in run.json as `data_skipped`); drop the sample
    either way. Constructor keywords shared by every data set:

    batch_size: training batch size (the class's `default_batch_size` when None)
    eval_batch_size: validation/test batch size (None: batch_size)
    pin_memory: pin host memory for GPU copies (None: when a GPU is present)
    seed: the shuffling order of the training batches
    on_error: raise | skip, what a bad sample does (see mmfuse.data.readers)
    """

    name: str = "multimodal"
    task: str = "multiclass"
    num_classes: int = 0
    class_names: list[str] | None = None
    default_batch_size: int = 128

    def __init__(self, batch_size: int | None = None, eval_batch_size: int | None = None,
                 pin_memory: bool | None = None, seed: int = 0, on_error: str = "raise"):
        super().__init__()
        batch_size = self.default_batch_size if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.errors = SampleErrors(on_error)
        self.splits: dict[str, TensorDictDataset] = {}
        self._fingerprint: str | None = None

    # --- what subclasses provide -------------------------------------------------
    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        raise NotImplementedError

    def build_splits(self) -> dict[str, TensorDictDataset]:
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

    # --- the error policy --------------------------------------------------------
    @property
    def on_error(self) -> str:
        return self.errors.on_error

    @property
    def skipped(self) -> dict[str, int]:
        """Samples dropped, counted by reason (empty unless on_error=skip or a sample had nothing to offer)."""
        return self.errors.as_dict()

    # --- Lightning hooks ---------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.build_splits()
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
        return batch_loader(self.splits["train"], self.batch_size, shuffle=True, seed=self.seed,
                            pin_memory=self.pin_memory, **self._shard())

    def val_dataloader(self):
        return batch_loader(self.splits["val"], self.eval_batch_size, shuffle=False, pin_memory=self.pin_memory,
                            **self._shard())

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

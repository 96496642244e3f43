"""CMU-MOSI / CMU-MOSEI style affect data from the pickle MultiBench and MulT read.

    {'train' | 'valid' | 'test': {'vision': (N, T, dv), 'audio': (N, T, da),
                                  'text': (N, T, dt), 'labels': (N,) | (N, 1) | (N, 1, 1), ...}}

Every modality is a float sequence (spec kind `sequence`, shape (T, d)) with
a padding mask `<m>_mask` (B, T): a step is real when any of its features is
non-zero. The pickles pad at the front; the sequence encoder packs the real
steps whatever their position, so the tensors are kept as stored.

- Non-finite feature values (MOSI/MOSEI audio holds -inf) are set to 0, as
  MultiBench does, and counted in `datamodule.replaced`.
- A modality with no real step in a sample is marked absent in `present`
  (`empty_modality=absent`), or the sample is skipped and counted
  (`empty_modality=skip`, as MultiBench drops samples without text);
  a sample with no real step in any modality is always skipped.
- `task=regression`: the sentiment score in [-3, 3]; metrics MAE, MSE,
  Pearson correlation and `acc2` (sign agreement on non-zero labels).
  `task=multiclass`: `num_classes=2` bins by sign (negative vs non-negative),
  `num_classes=7` by round(clip(y, -3, 3)) + 3 (numpy rounding, half to even).
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.readers import require_file
from mmfuse.data.spec import ModalitySpec

log = logging.getLogger(__name__)

SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
CLASS_NAMES = {2: ["negative", "non-negative"], 7: ["-3", "-2", "-1", "0", "1", "2", "3"]}
EMPTY = ("absent", "skip")


def sentiment_classes(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sentiment scores -> class ids: 2 classes by sign (y >= 0 is class 1), 7 by rounded score."""
    if num_classes == 2:
        return (y >= 0).long()
    return torch.round(y.clamp(-3, 3)).long() + 3


class AffectDataModule(MultimodalDataModule):
    task = "regression"
    default_batch_size = 32

    def __init__(
        self,
        path: str,
        modalities: Sequence[str] = ("vision", "audio", "text"),
        split_keys: dict[str, str] | None = None,
        label_key: str = "labels",
        task: str = "regression",
        num_classes: int = 2,
        empty_modality: str = "absent",
        name: str = "affect",
        **settings: Any,  # batch sizes, pin_memory, seed, on_error: see MultimodalDataModule
    ):
        super().__init__(**settings)
        if task not in ("regression", "multiclass"):
            raise ValueError(f"data.task={task!r}; the affect data support regression or multiclass")
        if task == "multiclass" and num_classes not in CLASS_NAMES:
            raise ValueError(
                f"data.num_classes={num_classes}; the classification view has 2 (sign) or 7 (rounded score) classes"
            )
        if empty_modality not in EMPTY:
            raise ValueError(f"data.empty_modality={empty_modality!r}; expected one of {list(EMPTY)}")
        self.modality_names = list(modalities)
        if not self.modality_names or len(set(self.modality_names)) != len(self.modality_names):
            raise ValueError(
                f"data.modalities must list distinct keys of the pickle's splits, got {self.modality_names}"
            )
        self.path = Path(path)
        self.split_keys = dict(split_keys or SPLIT_KEYS)
        if set(self.split_keys) != {"train", "val", "test"}:
            raise ValueError(
                f"data.split_keys must map train, val and test to the pickle's keys, got {self.split_keys}"
            )
        self.label_key = label_key
        self.task = task
        self.num_classes = num_classes if task == "multiclass" else 1
        self.class_names = CLASS_NAMES[num_classes] if task == "multiclass" else None
        self.empty_modality = empty_modality
        self.name = name
        self.replaced: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, int]] = {}

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        if not self._shapes:
            self.setup()
        return {m: ModalitySpec("sequence", self._shapes[m], has_mask=True) for m in self.modality_names}

    def fingerprint_params(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modalities": self.modality_names,
            "split_keys": self.split_keys,
            "task": self.task,
            "num_classes": self.num_classes,
            "empty_modality": self.empty_modality,
            "skipped": self.skipped,
        }

    # --- reading -------------------------------------------------------------------
    def _read(self) -> dict[str, dict[str, np.ndarray]]:
        require_file(self.path, "affect pickle", "set data.path to a MOSI/MOSEI-style pickle (e.g. mosi_raw.pkl)")
        try:
            with open(self.path, "rb") as f:
                data = pickle.load(f)
        except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
            raise ValueError(
                f"cannot read {self.path}: expected a pickle of {{'train'|'valid'|'test': {{...}}}} ({e})"
            ) from None
        if not isinstance(data, dict):
            raise ValueError(
                f"{self.path} holds a {type(data).__name__}; expected a dict with keys "
                f"{sorted(self.split_keys.values())}"
            )
        for key in self.split_keys.values():
            if key not in data or not isinstance(data[key], dict):
                raise ValueError(f"{self.path} has no split '{key}' (a dict); its keys are {sorted(map(str, data))}")
        out = {}
        for split, key in self.split_keys.items():
            part = data[key]
            arrays = {}
            for m in [*self.modality_names, self.label_key]:
                if m not in part:
                    raise ValueError(f"{self.path}: split '{key}' has no key '{m}'; it has {sorted(map(str, part))}")
                try:
                    arrays[m] = np.asarray(part[m], dtype=np.float32)
                except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
                    raise ValueError(f"{self.path}: '{key}/{m}' is not a numeric array ({e})") from None
                if m != self.label_key and arrays[m].ndim != 3:
                    raise ValueError(
                        f"{self.path}: '{key}/{m}' has shape {arrays[m].shape}; expected (N, T, d) sequences"
                    )
            n = {m: len(a) for m, a in arrays.items()}
            if len(set(n.values())) != 1:
                raise ValueError(f"{self.path}: the arrays of split '{key}' disagree on the number of samples: {n}")
            labels = arrays[self.label_key].reshape(len(arrays[self.label_key]), -1)
            if labels.shape[1] != 1:
                raise ValueError(
                    f"{self.path}: '{key}/{self.label_key}' has shape {arrays[self.label_key].shape}; "
                    "expected one sentiment score per sample: (N,), (N, 1) or (N, 1, 1)"
                )
            arrays[self.label_key] = labels[:, 0]
            out[split] = arrays
        for m in self.modality_names:
            widths = {self.split_keys[s]: out[s][m].shape[2] for s in out}
            if len(set(widths.values())) != 1:
                raise ValueError(f"{self.path}: '{m}' has different feature widths per split: {widths}")
        return out

    def build_splits(self) -> dict[str, TensorDictDataset]:
        raw = self._read()
        steps = {m: max(raw[s][m].shape[1] for s in raw) for m in self.modality_names}
        self._shapes = {m: (steps[m], raw["train"][m].shape[2]) for m in self.modality_names}
        return {split: TensorDictDataset(self._tensors(split, arrays, steps)) for split, arrays in raw.items()}

    def _tensors(self, split: str, arrays: dict[str, np.ndarray], steps: dict[str, int]) -> dict[str, torch.Tensor]:
        key = self.split_keys[split]
        y = torch.from_numpy(arrays[self.label_key])
        keep = torch.isfinite(y)
        for i in torch.nonzero(~keep).flatten().tolist():
            self.errors(
                "bad_label",
                f"{self.path}: '{key}/{self.label_key}' sample {i} is {y[i].item()}; expected a finite score",
            )
        tensors: dict[str, torch.Tensor] = {}
        present = []
        for m in self.modality_names:
            x = torch.from_numpy(arrays[m])
            finite = torch.isfinite(x)
            if not finite.all():
                count = int((~finite).sum())
                self.replaced[f"{split}/{m}/non_finite"] = count
                log.warning(
                    "%s: '%s/%s' holds %d non-finite values; set to 0 (as MultiBench)", self.path, key, m, count
                )
                x = torch.where(finite, x, torch.zeros(()))
            if x.shape[1] < steps[m]:  # a split with shorter sequences: pad at the end (masked out)
                x = torch.nn.functional.pad(x, (0, 0, 0, steps[m] - x.shape[1]))
            mask = (x != 0).any(-1)
            tensors[m], tensors[f"{m}_mask"] = x, mask
            present.append(mask.any(1))
        present_t = torch.stack(present, 1)
        nothing = ~present_t.any(1) & keep
        if nothing.any():
            self.errors.count("empty_sample", int(nothing.sum()))
            log.warning(
                "%s: skipping %d '%s' samples in which every modality is all zeros", self.path, int(nothing.sum()), key
            )
            keep &= ~nothing
        if self.empty_modality == "skip":
            for j, m in enumerate(self.modality_names):
                empty = ~present_t[:, j] & keep
                if empty.any():
                    self.errors.count(f"empty_{m}", int(empty.sum()))
                    log.warning(
                        "%s: skipping %d '%s' samples without a real '%s' step (data.empty_modality=skip)",
                        self.path,
                        int(empty.sum()),
                        key,
                        m,
                    )
                    keep &= ~empty
        if self.task == "regression":
            tensors["label"] = torch.where(torch.isfinite(y), y, 0.0).float()
        else:
            tensors["label"] = sentiment_classes(torch.where(torch.isfinite(y), y, 0.0), self.num_classes)
        tensors["present"] = present_t
        return {k: v[keep] for k, v in tensors.items()}

"""MM-IMDb (Arevalo et al. 2017) from `multimodal_imdb.hdf5`, as MultiBench reads it.

    features       (N, 300)   text: mean word2vec of the plot
    vgg_features   (N, 4096)  image: VGG-16 features of the poster
    genres         (N, 23)    multi-hot genre labels

Splits are index ranges of the file: [0, 15552) train, [15552, 18160) val,
[18160, 25959) test by default. Both modalities are feature vectors, so their
spec kind is `tabular` (the tabular encoder sizes itself from the width); the
task is `multilabel` (BCE loss; micro F1 `f1` and macro F1 `f1_macro`).
Each split's rows are read with one contiguous h5py slice per key and kept
in memory; batches are indexed a whole batch at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.readers import non_finite_rows, require_file
from mmfuse.data.spec import ModalitySpec

DEFAULT_SPLITS = {"train": (0, 15552), "val": (15552, 18160), "test": (18160, 25959)}


class MMIMDbDataModule(MultimodalDataModule):
    name = "mmimdb"
    task = "multilabel"

    def __init__(
        self,
        path: str,
        splits: dict[str, list[int]] | None = None,
        keys: dict[str, str] | None = None,
        label_key: str = "genres",
        class_names: list[str] | None = None,
        standardize: bool = True,
        **settings: Any,  # batch sizes, pin_memory, seed, on_error: see MultimodalDataModule
    ):
        super().__init__(**settings)
        self.path = Path(path)
        splits = {k: tuple(v) for k, v in (splits or DEFAULT_SPLITS).items()}
        if set(splits) != {"train", "val", "test"}:
            raise ValueError(f"data.splits must give train, val and test index ranges, got {sorted(splits)}")
        for split, rng in splits.items():
            if len(rng) != 2 or not 0 <= rng[0] < rng[1]:
                raise ValueError(f"data.splits.{split} must be [start, stop) with 0 <= start < stop, got {list(rng)}")
        self.split_ranges = splits
        self.keys = dict(keys or {"text": "features", "image": "vgg_features"})
        if not self.keys:
            raise ValueError("data.keys must map at least one modality name to an hdf5 dataset")
        self.label_key = label_key
        self.standardize = standardize
        self._class_names = list(class_names) if class_names else None
        self._widths: dict[str, int] = {}

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        if not self._widths:
            self.setup()
        return {m: ModalitySpec("tabular", (self._widths[m],)) for m in self.keys}

    def fingerprint_params(self) -> dict[str, Any]:
        return {"name": self.name, "splits": self.split_ranges, "keys": self.keys, "label_key": self.label_key,
                "standardize": self.standardize, "skipped": self.skipped}

    def _read(self) -> dict[str, dict[str, np.ndarray]]:
        import h5py

        require_file(self.path, "MM-IMDb file", "set data.path to multimodal_imdb.hdf5")
        try:
            f = h5py.File(self.path, "r")
        except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
            raise ValueError(f"cannot read {self.path}: expected an HDF5 file ({e})") from None
        with f:
            wanted = {**self.keys, "label": self.label_key}
            for modality, key in wanted.items():
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise ValueError(f"{self.path} has no dataset '{key}' (for {modality}); it has {sorted(f.keys())}")
                if f[key].ndim != 2:
                    raise ValueError(f"{self.path}: dataset '{key}' has shape {f[key].shape}; expected (N, features)")
            n = {key: f[key].shape[0] for key in wanted.values()}
            if len(set(n.values())) != 1:
                raise ValueError(f"{self.path}: datasets disagree on the number of samples: {n}")
            total = next(iter(n.values()))
            for split, (start, stop) in self.split_ranges.items():
                if stop > total:
                    raise ValueError(
                        f"data.splits.{split}=[{start}, {stop}) runs past the {total} samples of {self.path}"
                    )
            return {
                split: {m: np.asarray(f[key][start:stop]) for m, key in wanted.items()}
                for split, (start, stop) in self.split_ranges.items()
            }

    def build_splits(self) -> dict[str, TensorDictDataset]:
        raw = self._read()
        self.num_classes = raw["train"]["label"].shape[1]
        if self._class_names and len(self._class_names) != self.num_classes:
            raise ValueError(
                f"data.class_names lists {len(self._class_names)} names for the {self.num_classes} labels "
                f"of '{self.label_key}' in {self.path}"
            )
        self.class_names = self._class_names or [f"genre_{i}" for i in range(self.num_classes)]
        out = {}
        for split, arrays in raw.items():
            start = self.split_ranges[split][0]
            tensors = {m: torch.from_numpy(arrays[m].astype(np.float32, copy=False)) for m in self.keys}
            labels = torch.from_numpy(arrays["label"].astype(np.float64))
            keep = torch.ones(len(labels), dtype=torch.bool)
            bad_label = ~((labels == 0) | (labels == 1)).all(1)
            for i in torch.nonzero(bad_label).flatten().tolist():
                self.errors(
                    "bad_label",
                    f"{self.path}: '{self.label_key}' row {start + i} is not multi-hot (0/1) "
                    f"values: {arrays['label'][i].tolist()}",
                )
                keep[i] = False
            for m, key in self.keys.items():
                for i in torch.nonzero(non_finite_rows(tensors[m]) & keep).flatten().tolist():
                    self.errors("non_finite", f"{self.path}: '{key}' row {start + i} holds NaN or infinite values")
                    keep[i] = False
            tensors["label"] = torch.where(bad_label[:, None], 0, labels).long()
            tensors["present"] = torch.ones(len(labels), len(self.keys), dtype=torch.bool)
            out[split] = tensors if keep.all() else {k: v[keep] for k, v in tensors.items()}
        self._widths = {m: out["train"][m].shape[1] for m in self.keys}
        if self.standardize:
            for m in self.keys:
                mean, std = out["train"][m].mean(0), out["train"][m].std(0, correction=0).clamp_min(1e-6)
                for split in out:
                    out[split][m].sub_(mean).div_(std)
        return {split: TensorDictDataset(tensors) for split, tensors in out.items()}

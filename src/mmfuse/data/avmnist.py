"""AV-MNIST in the layout MultiBench ships (Vielzeuf et al. 2018; Liang et al. 2021).

    <data_dir>/image/train_data.npy   (N, 784) or (N, 28, 28), uint8 MNIST digits
    <data_dir>/image/test_data.npy
    <data_dir>/audio/train_data.npy   (N, 112, 112) spectrograms of spoken digits
    <data_dir>/audio/test_data.npy
    <data_dir>/train_labels.npy       (N,) digits 0-9
    <data_dir>/test_labels.npy

As MultiBench's `get_dataloader`: both modalities are divided by 255
(`normalize`), and the last `val_size` (5,000) training samples are the
validation split. Image batches are (B, 1, 28, 28) (kind image), audio
batches (B, 1, 112, 112) (kind audio: a spectrogram, so the audio CNN uses
2-D convolutions).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.readers import load_npy, non_finite_rows
from mmfuse.data.spec import ModalitySpec

NUM_CLASSES = 10
LAYOUT = "image/{split}_data.npy, audio/{split}_data.npy and {split}_labels.npy (MultiBench AV-MNIST layout)"


class AVMNISTDataModule(MultimodalDataModule):
    name = "avmnist"
    task = "multiclass"

    def __init__(
        self,
        data_dir: str,
        val_size: int = 5000,
        normalize: bool = True,
        **settings: Any,  # batch sizes, pin_memory, seed, on_error: see MultimodalDataModule
    ):
        super().__init__(**settings)
        if val_size < 1:
            raise ValueError(f"data.val_size must be >= 1, got {val_size}")
        self.data_dir = Path(data_dir)
        self.val_size = int(val_size)
        self.normalize = normalize
        self.num_classes = NUM_CLASSES
        self.class_names = [str(i) for i in range(NUM_CLASSES)]

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        return {"image": ModalitySpec("image", (1, 28, 28)), "audio": ModalitySpec("audio", (1, 112, 112))}

    def fingerprint_params(self) -> dict[str, Any]:
        return {"name": self.name, "val_size": self.val_size, "normalize": self.normalize, "skipped": self.skipped}

    def _load(self, split: str) -> dict[str, torch.Tensor]:
        if not self.data_dir.is_dir():
            raise FileNotFoundError(
                f"AV-MNIST folder not found: {self.data_dir}; expected {LAYOUT.format(split='train|test')} "
                "below it (set data.data_dir)"
            )
        image_path = self.data_dir / "image" / f"{split}_data.npy"
        audio_path = self.data_dir / "audio" / f"{split}_data.npy"
        label_path = self.data_dir / f"{split}_labels.npy"
        image = load_npy(
            image_path, "AV-MNIST image data", lambda s: s[1:] in ((784,), (28, 28)), "(N, 784) or (N, 28, 28)"
        )
        audio = load_npy(audio_path, "AV-MNIST audio data", lambda s: s[1:] == (112, 112), "(N, 112, 112)")
        labels = load_npy(label_path, "AV-MNIST labels", lambda s: len(s) == 1 or s[1:] == (1,), "(N,) or (N, 1)")
        sizes = {str(image_path): len(image), str(audio_path): len(audio), str(label_path): len(labels)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"AV-MNIST {split} files disagree on the number of samples: {sizes}")
        scale = 1 / 255 if self.normalize else 1.0
        tensors = {
            "image": torch.from_numpy(np.array(image, dtype=np.float32)).reshape(-1, 1, 28, 28).mul_(scale),
            "audio": torch.from_numpy(np.array(audio, dtype=np.float32)).reshape(-1, 1, 112, 112).mul_(scale),
        }
        raw_labels = np.asarray(labels).reshape(-1)
        if np.issubdtype(raw_labels.dtype, np.number):
            valid = (
                np.isfinite(raw_labels)
                & (raw_labels == np.round(raw_labels))
                & (raw_labels >= 0)
                & (raw_labels < NUM_CLASSES)
            )
        else:
            valid = np.zeros(len(raw_labels), dtype=bool)
        keep = torch.ones(len(raw_labels), dtype=torch.bool)
        for i in np.flatnonzero(~valid):
            self.errors(
                "bad_label",
                f"{label_path}: sample {i} has label {raw_labels[i].tolist()!r}; expected an integer digit 0-9",
            )
            keep[i] = False
        for key, path in (("image", image_path), ("audio", audio_path)):
            for i in torch.nonzero(non_finite_rows(tensors[key]) & keep).flatten().tolist():
                self.errors("non_finite", f"{path}: sample {i} holds NaN or infinite values")
                keep[i] = False
        tensors["label"] = torch.from_numpy(np.where(valid, raw_labels, 0).astype(np.int64))
        tensors["present"] = torch.ones(len(raw_labels), 2, dtype=torch.bool)
        if not keep.all():
            tensors = {k: v[keep] for k, v in tensors.items()}
        return tensors

    def build_splits(self) -> dict[str, TensorDictDataset]:
        train = TensorDictDataset(self._load("train"))
        test = TensorDictDataset(self._load("test"))
        if self.val_size >= len(train):
            raise ValueError(
                f"data.val_size={self.val_size} leaves no training samples: {self.data_dir / 'train_labels.npy'} "
                f"has {len(train)} (usable) samples"
            )
        cut = len(train) - self.val_size
        # slices are views: the full set's spectrograms take 3 GB as float32, so no copies
        return {
            "train": TensorDictDataset({k: v[:cut] for k, v in train.tensors.items()}),
            "val": TensorDictDataset({k: v[cut:] for k, v in train.tensors.items()}),
            "test": test,
        }

"""`ManifestDataModule`: a manifest file read, checked, decoded and split into in-memory tensors (see the package)."""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.manifest.augment import AugmentedDataset, RandomCropFlip
from mmfuse.data.manifest.columns import infer_columns
from mmfuse.data.manifest.files import FileDecoder
from mmfuse.data.manifest.labels import build_labels
from mmfuse.data.manifest.options import (
    AudioOptions,
    ColumnOptions,
    ImageOptions,
    LabelOptions,
    SplitOptions,
    TextOptions,
    take,
)
from mmfuse.data.manifest.samples import Sample, parse_rows
from mmfuse.data.manifest.splits import assign_splits
from mmfuse.data.manifest.tensors import (
    Modality,
    audio_modality,
    hf_text_modality,
    image_modality,
    tabular_modality,
    text_modality,
)
from mmfuse.data.readers import require_file
from mmfuse.data.rows import cell, read_rows
from mmfuse.data.spec import ModalitySpec

log = logging.getLogger(__name__)


class ManifestDataModule(MultimodalDataModule):
    """The samples of a CSV/TSV or JSONL manifest (`path`; relative file paths are relative to its folder).

    `allow_missing` and `name`, and every other keyword, are the keys of conf/data/manifest.yaml: each group of
    `mmfuse.data.manifest.options` takes its own, and MultimodalDataModule the loader settings and `on_error`.
    """

    name = "manifest"
    default_batch_size = 64

    def __init__(self, path: str, allow_missing: bool = False, name: str = "manifest", **settings: Any):
        self.column_options = take(ColumnOptions, settings)
        self.label_options = take(LabelOptions, settings)
        self.split_options = take(SplitOptions, settings)
        self.image_options = take(ImageOptions, settings)
        self.audio_options = take(AudioOptions, settings)
        self.text_options = take(TextOptions, settings)
        super().__init__(**settings)
        self.path = Path(path)
        self.allow_missing = allow_missing
        self.name = name
        # what the manifest decides, set by setup()
        self.columns: dict[str, Any] = {}
        self.stratified = False  # whether the seeded split was stratified (multiclass only)
        self._specs: dict[str, ModalitySpec] = {}
        self._preprocessing: dict[str, dict[str, Any]] = {}

    # --- public ------------------------------------------------------------------
    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        if not self._specs:
            self.setup()
        return self._specs

    def fingerprint_params(self) -> dict[str, Any]:
        # the keys are the attribute names of earlier versions, so fingerprints recorded by them stay valid
        s, i, a, t = self.split_options, self.image_options, self.audio_options, self.text_options
        params = {"name": self.name, "path": self.path.name, "columns": self.columns, "task": self.task,
                  "num_classes": self.num_classes, "class_names": self.class_names, "split_fractions": s.split,
                  "data_seed": s.data_seed, "allow_missing": self.allow_missing, "image_size": i.image_size,
                  "augment": i.augment, "sample_rate": a.sample_rate, "audio_seconds": a.audio_seconds,
                  "audio_features": a.audio_features, "n_fft": a.n_fft, "hop": a.hop, "n_mels": a.n_mels,
                  "vocab_size_limit": t.vocab_size, "min_freq": t.min_freq, "max_text_length": t.max_text_length,
                  "tokenizer": t.tokenizer, "skipped": self.skipped}
        # a stratified split is named; the plain split's parameters stay as they were, and so do older fingerprints
        return {**params, **({"split_stratified_by": "label"} if self.stratified else {})}

    def preprocessing(self) -> dict[str, dict[str, Any]]:
        self.setup()
        return copy.deepcopy(self._preprocessing)

    # the training split's statistics and vocabulary, also in preprocessing()
    @property
    def vocabulary(self) -> list[str]:
        return list(self._preprocessing.get("text", {}).get("vocabulary", []))

    @property
    def image_stats(self) -> dict[str, Any]:
        return self._statistics("image")

    @property
    def audio_stats(self) -> dict[str, Any]:
        return self._statistics("audio")

    @property
    def tabular_stats(self) -> dict[str, Any]:
        return self._statistics("tabular")

    def _statistics(self, modality: str) -> dict[str, Any]:
        record = self._preprocessing.get(modality, {})
        return {"mean": record.get("mean"), "std": record.get("std")}

    # --- build ---------------------------------------------------------------------
    def build_splits(self) -> dict[str, TensorDictDataset]:
        require_file(self.path, "manifest", "set data.path to a .csv, .tsv or .jsonl file")
        header, rows = read_rows(self.path)
        if not rows:
            raise ValueError(f"manifest {self.path} has a header but no rows")
        split_column = self.split_options.split_column
        self.columns = infer_columns(self.path, header, rows, self.column_options, self.label_options.label_column,
                                     split_column)
        log.info("manifest %s: columns %s", self.path, self.columns)
        samples = parse_rows(self.path, rows, self.columns, self.label_options, split_column, self.allow_missing,
                             self.errors)
        if not samples:
            raise ValueError(f"manifest {self.path}: no usable rows (skipped: {self.skipped})")
        labels = build_labels(self.path, samples, self.label_options, self.errors)
        self.task, self.num_classes, self.class_names = labels.task, labels.num_classes, labels.class_names
        samples = [samples[i] for i in labels.keep]
        decoder = FileDecoder(self.path, self.columns, self.image_options, self.audio_options, self.allow_missing,
                              self.errors)
        kept, images, waves = decoder.decode(samples)  # a row whose file is bad is skipped (or raises) here
        if not kept:
            raise ValueError(f"manifest {self.path}: no usable rows (skipped: {self.skipped})")
        samples, targets = [samples[j] for j in kept], labels.values[kept]
        position = {id(r): i for i, r in enumerate(rows)}
        splits, self.stratified = assign_splits([s.split for s in samples], [position[id(s.row)] for s in samples],
                                                len(rows), targets, self.task, self.num_classes, self.split_options)
        train = torch.tensor([s == "train" for s in splits])
        if not train.any():
            raise ValueError(f"manifest {self.path}: no usable row is in the training split")

        present = {m: torch.tensor([m not in s.absent for s in samples]) for m in self.columns}
        built = self._modalities(samples, images, waves, present, train)
        self._specs = {m: b.spec for m, b in built.items()}
        self._preprocessing = {m: b.preprocessing for m, b in built.items()}
        tensors = {k: v for b in built.values() for k, v in b.tensors.items()}
        tensors["label"] = targets
        tensors["present"] = torch.stack([present[m] for m in self.columns], 1)
        full = TensorDictDataset(tensors)
        out = {name: full.subset(torch.tensor([i for i, s in enumerate(splits) if s == name], dtype=torch.long))
               for name in ("train", "val", "test")}
        augment = self.image_options.augment
        if "image" in self.columns and (augment["crop_padding"] or augment["hflip"]):
            black = -torch.tensor(self.image_stats["mean"]) / torch.tensor(self.image_stats["std"])
            out["train"] = AugmentedDataset(out["train"].tensors, RandomCropFlip(
                "image", augment["crop_padding"], augment["hflip"], fill=black))
        if self.skipped:
            log.warning("manifest %s: skipped %s", self.path, self.skipped)
        return out

    def _modalities(self, samples: list[Sample], images: list, waves: list, present: dict[str, torch.Tensor],
                    train: torch.Tensor) -> dict[str, Modality]:
        """Each modality's tensors, spec and preprocessing record; a file-path modality also records its column."""
        built: dict[str, Modality] = {}
        if "image" in self.columns:
            built["image"] = image_modality(images, present["image"], train, self.image_options)
        if "audio" in self.columns:
            built["audio"] = audio_modality(waves, present["audio"], train, self.audio_options)
        if "text" in self.columns:
            texts = [str(cell(s.row.values[self.columns["text"]])) if p else ""
                     for s, p in zip(samples, present["text"].tolist())]
            built["text"] = hf_text_modality(texts, present["text"], self.text_options) if self.text_options.tokenizer \
                else text_modality(texts, train, self.text_options)
        if "tabular" in self.columns:
            columns = self.columns["tabular"]
            values = [[cell(s.row.values[c]) for c in columns] for s in samples]
            built["tabular"] = tabular_modality(values, present["tabular"], train, columns)
        for m, b in built.items():
            if m != "tabular":
                b.preprocessing["column"] = self.columns[m]
        return built

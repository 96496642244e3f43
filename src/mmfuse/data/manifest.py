"""The user's own multimodal data: a CSV/TSV or JSONL manifest, one row per sample.

    image,audio,text,age,label,split
    img/0001.png,wav/0001.wav,"a short caption",31,cat,train
    ...

Columns and what they become:

- `image`: path of an image file (PIL reads it; resized so the shorter side
  is `image_size`, centre-cropped square, normalised per channel with the
  training split's mean/std unless given). Kind `image`, (C, S, S).
- `audio`: path of a WAV (or other libsndfile) recording; mono, resampled
  to `sample_rate`, cropped from the start or zero-padded to
  `audio_seconds`, then a log-mel (or log) spectrogram from
  `mmfuse.data.audio.log_spectrogram`, standardised with training
  statistics. Kind `audio`, (1, bands, frames) (or (1, L) as `waveform`).
- `text`: a string; lower-cased word/punctuation tokens, vocabulary from the
  training split (`vocab_size`, `min_freq`; 0 = padding, 1 = unknown), or
  the ids of a local Hugging Face tokenizer (`tokenizer=<dir>`, recorded in
  the spec's `extra["tokenizer"]` for `encoder/text=hf`). Kind `text`, (T,)
  int64 ids with `text_mask`.
- numeric columns: grouped as `tabular` (D,), standardised per column with
  training statistics.
- `label`: a class name or number; several labels separated by
  `label_separator` (or a JSON list) make a multilabel task; a number with
  `task=regression`.
- `split` (optional): train / val / test (also valid, validation, dev);
  without it, a split seeded by `data_seed` in the fractions `split`,
  stratified by label with `stratify` (multiclass; each class keeps its
  share in every split, see mmfuse.data.stratify).

Which column feeds which modality is inferred (image or audio file
extensions, numbers, otherwise text) unless set in `columns`. Relative paths
are relative to the manifest's folder. Every file is decoded once, in
`setup`, into in-memory tensors; training indexes them a batch at a time.
Training images may be augmented per batch (random crop after padding,
horizontal flip), vectorised with a random offset per sample: torchvision's
random transforms draw one set of parameters per call, i.e. per batch.

Errors name the manifest's line (1-based, the header is line 1 of a CSV)
and column. An empty cell or missing file makes the modality absent in
`present` with `allow_missing=true`, and is an error otherwise; with
`on_error=skip` a bad row is skipped and counted in `datamodule.skipped`.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmfuse.data.audio import fix_length, read_wav
from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.decode import (AUDIO_EXTENSIONS, AUDIO_FEATURES, IMAGE_EXTENSIONS, UNK, image_pixels,  # noqa: F401
                                token_ids, tokenize, wave_features)
from mmfuse.data.readers import read_image, require_file
from mmfuse.data.spec import ModalitySpec
from mmfuse.data.stratify import stratified_counts

log = logging.getLogger(__name__)

MODALITY_KINDS = ("image", "audio", "text", "tabular")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
TASKS = ("auto", "multiclass", "multilabel", "regression")
MISSING = object()  # a column the row lacks (short CSV row, JSONL object without the key)


@dataclass
class Row:
    line: int                      # 1-based line of the manifest where the row starts
    values: dict[str, Any]         # column -> raw value, or MISSING
    problem: tuple[str, str] | None = None  # (reason, message) when the row itself is malformed
    absent: set[str] = field(default_factory=set)  # modalities missing in this row (allow_missing)


def _cell(value: Any) -> Any:
    """Normalised cell: stripped strings, None for empty."""
    if value is MISSING or value is None:
        return value
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list) and not value:
        return None
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
            return True
        except ValueError:
            return False
    return False


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_rows(path: Path) -> tuple[list[str], list[Row]]:
    """Header (column names in order of appearance) and rows of a CSV/TSV or JSONL manifest."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",")
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read manifest {path}: expected UTF-8 text ({e})") from None
    raise ValueError(f"manifest {path}: unknown format '{suffix}'; expected .csv, .tsv or .jsonl")


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[Row]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError(f"manifest {path} is empty; expected a header line naming the columns")
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ValueError(f"manifest {path}: the header names columns {dupes} more than once")
        rows, last = [], reader.line_num
        for fields in reader:
            line, last = last + 1, reader.line_num
            if not any(x.strip() for x in fields):
                continue  # blank line
            values = {c: (fields[i] if i < len(fields) else MISSING) for i, c in enumerate(header)}
            problem = None
            if len(fields) > len(header):
                problem = ("extra_fields", f"manifest {path} line {line}: {len(fields)} fields for {len(header)} columns {header}")
            rows.append(Row(line, values, problem))
    return header, rows


def _read_jsonl(path: Path) -> tuple[list[str], list[Row]]:
    header: dict[str, None] = {}
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                rows.append(Row(line, {}, ("invalid_json", f"manifest {path} line {line}: not valid JSON ({e})")))
                continue
            if not isinstance(obj, dict):
                rows.append(Row(line, {}, ("invalid_json", f"manifest {path} line {line}: expected a JSON object, got {type(obj).__name__}")))
                continue
            header.update(dict.fromkeys(obj))
            rows.append(Row(line, obj))
    for row in rows:
        if row.problem is None:
            row.values = {c: row.values.get(c, MISSING) for c in header}
    return list(header), rows


class RandomCropFlip:
    """Train-time image augmentation on a batch (B, C, H, W), with its own random draw per sample.

    Pads by `padding` pixels with the (normalised) value of black, then crops
    back to H x W at a random offset; flips horizontally with probability 1/2.
    Uses torch's global generator, which the run's seed fixes.
    """

    def __init__(self, key: str, padding: int, hflip: bool, fill: torch.Tensor):
        self.key, self.padding, self.hflip = key, int(padding), bool(hflip)
        self.fill = fill.reshape(1, -1, 1, 1)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.key]
        b, c, h, w = x.shape
        if self.padding > 0:
            p = self.padding
            padded = F.pad(x - self.fill, (p, p, p, p)) + self.fill
            dy = torch.randint(0, 2 * p + 1, (b, 1, 1, 1))
            dx = torch.randint(0, 2 * p + 1, (b, 1, 1, 1))
            rows = dy + torch.arange(h).view(1, 1, h, 1)
            cols = dx + torch.arange(w).view(1, 1, 1, w)
            x = padded[torch.arange(b).view(b, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]
        if self.hflip:
            flip = torch.rand(b) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
        return {**batch, self.key: x}


class AugmentedDataset(TensorDictDataset):
    """A TensorDictDataset whose batches pass through `augment` (used for the training split only)."""

    def __init__(self, tensors: dict[str, torch.Tensor], augment: Callable[[dict], dict]):
        super().__init__(tensors)
        self.augment = augment

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        return self.augment(super().__getitem__(index))

    def subset(self, index: torch.Tensor) -> "AugmentedDataset":
        return AugmentedDataset({k: v[index] for k, v in self.tensors.items()}, self.augment)


class ManifestDataModule(MultimodalDataModule):
    name = "manifest"
    default_batch_size = 64

    def __init__(
        self,
        path: str,
        columns: dict[str, Any] | None = None,
        modalities: Sequence[str] | None = None,
        label_column: str = "label",
        split_column: str = "split",
        ignore: Sequence[str] = ("id",),
        task: str = "auto",
        classes: Sequence[Any] | None = None,
        label_separator: str = "|",
        split: Sequence[float] = (0.8, 0.1, 0.1),
        data_seed: int = 0,
        stratify: bool = False,
        allow_missing: bool = False,
        on_error: str = "raise",
        image_size: int = 32,
        image_channels: int | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        augment: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        audio_seconds: float = 1.0,
        audio_features: str = "logmel",
        n_fft: int = 512,
        hop: int = 160,
        n_mels: int = 40,
        vocab_size: int = 10000,
        min_freq: int = 1,
        max_text_length: int = 64,
        tokenizer: str | None = None,
        name: str = "manifest",
        **settings: Any,  # batch sizes, pin_memory, seed: see MultimodalDataModule
    ):
        super().__init__(on_error=on_error, **settings)
        columns = dict(columns or {})
        unknown = [k for k in columns if k not in MODALITY_KINDS]
        if unknown:
            raise ValueError(f"data.columns has unknown modalities {unknown}; expected keys among {list(MODALITY_KINDS)}")
        if modalities is not None and (not modalities or any(m not in MODALITY_KINDS for m in modalities)):
            raise ValueError(f"data.modalities={list(modalities)}; expected a non-empty subset of {list(MODALITY_KINDS)} or null")
        if task not in TASKS:
            raise ValueError(f"data.task={task!r}; expected one of {list(TASKS)}")
        if len(split) != 3 or any(s < 0 for s in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")
        if image_channels not in (None, 1, 3):
            raise ValueError(f"data.image_channels must be 1, 3 or null, got {image_channels}")
        if audio_features not in AUDIO_FEATURES:
            raise ValueError(f"data.audio_features={audio_features!r}; expected one of {list(AUDIO_FEATURES)}")
        for key, value in (("image_size", image_size), ("sample_rate", sample_rate), ("n_fft", n_fft), ("hop", hop),
                           ("max_text_length", max_text_length), ("min_freq", min_freq)):
            if value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
        if vocab_size < 3:
            raise ValueError(f"data.vocab_size must be >= 3 (padding, unknown and one token), got {vocab_size}")
        if audio_seconds <= 0:
            raise ValueError(f"data.audio_seconds must be > 0, got {audio_seconds}")
        self.path = Path(path)
        self.columns_config = {k: v for k, v in columns.items() if v}
        self.modality_filter = list(modalities) if modalities is not None else None
        self.label_column, self.split_column = label_column, split_column
        self.ignore = set(ignore or ())
        self.task_config = task
        self.classes_config = [_label_text(c) for c in classes] if classes else None
        self.label_separator = label_separator
        self.split_fractions = tuple(split)
        self.data_seed = data_seed
        # off unless asked (the shipped data/manifest.yaml asks): a snapshot without the key keeps its old split
        self.stratify = bool(stratify)
        self.stratified = False  # whether the seeded split was stratified (multiclass only); set in setup
        self.allow_missing = allow_missing
        self.image_size, self.image_channels = image_size, image_channels
        self.image_mean, self.image_std = image_mean, image_std
        self.augment = {"crop_padding": 0, "hflip": False, **dict(augment or {})}
        self.sample_rate, self.audio_seconds, self.audio_features = sample_rate, audio_seconds, audio_features
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        self.vocab_size_limit, self.min_freq, self.max_text_length = vocab_size, min_freq, max_text_length
        self.tokenizer = str(tokenizer) if tokenizer else None
        self.name = name
        self.columns: dict[str, Any] = {}
        self.vocabulary: list[str] = []
        self.image_stats: dict[str, list[float]] = {}
        self.audio_stats: dict[str, float | None] = {"mean": None, "std": None}
        self.tabular_stats: dict[str, list[float] | None] = {"mean": None, "std": None}
        self._black = torch.zeros(1)
        self._specs: dict[str, ModalitySpec] = {}

    # --- public ------------------------------------------------------------------
    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        if not self._specs:
            self.setup()
        return self._specs

    def fingerprint_params(self) -> dict[str, Any]:
        keys = ("columns", "task", "num_classes", "class_names", "split_fractions", "data_seed", "allow_missing", "image_size",
                "augment", "sample_rate", "audio_seconds", "audio_features", "n_fft", "hop", "n_mels", "vocab_size_limit",
                "min_freq", "max_text_length", "tokenizer", "skipped")
        # a stratified split is named; the plain split's parameters stay as they were, and so do older fingerprints
        stratified = {"split_stratified_by": "label"} if self.stratified else {}
        return {"name": self.name, "path": self.path.name, **{k: getattr(self, k) for k in keys}, **stratified}

    def preprocessing(self) -> dict[str, dict[str, Any]]:
        specs = self.modalities  # sets up
        out: dict[str, dict[str, Any]] = {}
        if "image" in specs:
            out["image"] = {"reader": "image", "size": self.image_size, "channels": specs["image"].shape[0], **self.image_stats}
        if "audio" in specs:
            out["audio"] = {"reader": "audio", "sample_rate": self.sample_rate, "seconds": self.audio_seconds,
                            "features": self.audio_features, "n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels,
                            **self.audio_stats}
        if "text" in specs:
            length = specs["text"].shape[0]
            out["text"] = {"reader": "hf_text", "tokenizer": self.tokenizer, "length": length} if self.tokenizer else \
                {"reader": "text", "vocabulary": list(self.vocabulary), "length": length}
        if "tabular" in specs:
            out["tabular"] = {"reader": "numbers", "columns": list(self.columns["tabular"]), **self.tabular_stats}
        for m in out:
            if m != "tabular":
                out[m]["column"] = self.columns[m]
        return out

    # --- columns -----------------------------------------------------------------
    def _where(self, row: Row, column: str | None = None) -> str:
        return f"manifest {self.path} line {row.line}" + (f", column '{column}'" if column else "")

    def _infer_columns(self, header: list[str], rows: list[Row]) -> dict[str, Any]:
        if self.label_column not in header:
            raise ValueError(f"manifest {self.path} has no label column '{self.label_column}' (data.label_column); "
                             f"its columns are {header}")
        taken: set[str] = set()
        columns: dict[str, Any] = {}
        for kind, value in self.columns_config.items():
            names = [value] if isinstance(value, str) else list(value)
            if kind != "tabular" and len(names) != 1:
                raise ValueError(f"data.columns.{kind} must name one column, got {names}")
            for c in names:
                if c not in header:
                    raise ValueError(f"data.columns.{kind}={c!r} is not a column of manifest {self.path}; its columns are {header}")
            columns[kind] = names if kind == "tabular" else names[0]
            taken.update(names)
        special = {self.label_column, self.split_column, *self.ignore}
        found: dict[str, list[str]] = {}
        for c in header:
            if c in special or c in taken:
                continue
            values = [_cell(r.values.get(c)) for r in rows if r.problem is None]
            values = [v for v in values if v is not None and v is not MISSING]
            kind = self._infer_kind(values)
            if kind is None:
                log.warning("manifest %s: column '%s' is empty everywhere; ignored", self.path, c)
            elif kind in columns:
                log.warning("manifest %s: column '%s' looks like %s, but data.columns.%s is set; ignored", self.path, c, kind, kind)
            else:
                found.setdefault(kind, []).append(c)
        for kind, names in found.items():
            if kind != "tabular" and len(names) > 1:
                raise ValueError(f"manifest {self.path}: columns {names} all look like {kind}; choose one with "
                                 f"data.columns.{kind}=<column> and list the others in data.ignore")
            columns[kind] = names if kind == "tabular" else names[0]
        if self.modality_filter is not None:
            lacking = [m for m in self.modality_filter if m not in columns]
            if lacking:
                raise ValueError(f"data.modalities asks for {lacking}, but manifest {self.path} has no such column "
                                 f"(found {columns}); set data.columns.<modality>=<column>")
            columns = {m: columns[m] for m in self.modality_filter}
        if not columns:
            raise ValueError(f"manifest {self.path}: no input columns found besides '{self.label_column}' "
                             f"(columns {header}); set data.columns")
        return {m: columns[m] for m in MODALITY_KINDS if m in columns}

    @staticmethod
    def _infer_kind(values: list[Any]) -> str | None:
        if not values:
            return None
        if all(isinstance(v, str) for v in values):
            suffixes = {Path(v).suffix.lower() for v in values}
            if suffixes <= IMAGE_EXTENSIONS:
                return "image"
            if suffixes <= AUDIO_EXTENSIONS:
                return "audio"
        if all(_is_number(v) and not isinstance(v, list) for v in values):
            return "tabular"
        return "text"

    # --- labels and splits -------------------------------------------------------
    def _label_tokens(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return [_label_text(v) for v in value if _label_text(v)]
        text = _label_text(value)
        if self.label_separator and self.task_config in ("auto", "multilabel"):
            return [t.strip() for t in text.split(self.label_separator) if t.strip()]
        return [text]

    def _parse_rows(self, rows: list[Row]) -> list[tuple[Row, list[str], str | None]]:
        """Rows that pass the checks that need no files: (row, label tokens, split)."""
        good = []
        has_split = self.split_column in {c for r in rows for c in r.values}
        for row in rows:
            if row.problem is not None:
                self.errors(*row.problem)
                continue
            label = _cell(row.values.get(self.label_column, MISSING))
            if label is MISSING:
                self.errors("missing_column", f"{self._where(row)}: no column '{self.label_column}' (the label); the row lacks it")
                continue
            if label is None:
                self.errors("missing_label", f"{self._where(row, self.label_column)}: the label is empty")
                continue
            split = None
            if has_split:
                raw = _cell(row.values.get(self.split_column, MISSING))
                split = SPLIT_NAMES.get(str(raw).lower()) if raw not in (None, MISSING) else None
                if split is None:
                    self.errors("bad_split", f"{self._where(row, self.split_column)}: split {raw if raw is not MISSING else None!r}; "
                                             f"expected one of {sorted(SPLIT_NAMES)}")
                    continue
            if not self._check_inputs(row):
                continue
            good.append((row, self._label_tokens(label), split))
        return good

    def _check_inputs(self, row: Row) -> bool:
        """Empty or lacking cells: absent modalities (allow_missing) or a bad row."""
        for kind, column in self.columns.items():
            for c in (column if kind == "tabular" else [column]):
                value = _cell(row.values.get(c, MISSING))
                if value is MISSING or value is None:
                    if self.allow_missing:
                        row.absent.add(kind)
                        continue
                    if value is MISSING:
                        self.errors("missing_column", f"{self._where(row)}: no column '{c}' ({kind}); the row lacks it")
                    else:
                        self.errors("missing_value", f"{self._where(row, c)}: empty {kind} value "
                                                     "(data.allow_missing=true makes it an absent modality)")
                    return False
                if kind == "tabular" and not (_is_number(value) and math.isfinite(float(value))):
                    self.errors("bad_number", f"{self._where(row, c)}: {value!r} is not a finite number")
                    return False
        if len(row.absent) == len(self.columns):
            self.errors.count("no_modality")
            log.warning("%s: every input is missing; skipped", self._where(row))
            return False
        return True

    def _labels(self, parsed: list[tuple[Row, list[str], str | None]]) -> tuple[list[int], torch.Tensor]:
        """Task, classes and the label tensor; rows with bad labels are dropped (indices of kept rows returned)."""
        task = self.task_config
        if task == "auto":
            task = "multilabel" if any(len(t) != 1 or isinstance(r.values.get(self.label_column), list) for r, t, _ in parsed) \
                else "multiclass"
        self.task = task
        if task == "regression":
            keep, values = [], []
            for i, (row, tokens, _) in enumerate(parsed):
                if len(tokens) != 1 or not _is_number(tokens[0]) or not math.isfinite(float(tokens[0])):
                    self.errors("bad_label", f"{self._where(row, self.label_column)}: {'|'.join(tokens)!r} is not a number "
                                             "(data.task=regression)")
                    continue
                keep.append(i)
                values.append(float(tokens[0]))
            self.num_classes, self.class_names = 1, None
            return keep, torch.tensor(values, dtype=torch.float32)
        if self.classes_config:
            classes = list(dict.fromkeys(self.classes_config))
        else:
            seen = sorted({t for _, tokens, _ in parsed for t in tokens})
            numeric = all(_is_number(t) for t in seen)
            classes = sorted(seen, key=float) if numeric else seen
        index = {c: i for i, c in enumerate(classes)}
        keep, targets = [], []
        for i, (row, tokens, _) in enumerate(parsed):
            unknown = [t for t in tokens if t not in index]
            if unknown:
                self.errors("unknown_label", f"{self._where(row, self.label_column)}: label {unknown[0]!r} is not one of "
                                             f"data.classes {classes}")
                continue
            if task == "multiclass" and len(tokens) != 1:
                self.errors("bad_label", f"{self._where(row, self.label_column)}: {len(tokens)} labels {tokens} "
                                         "for a multiclass task (data.task=multilabel allows several)")
                continue
            keep.append(i)
            targets.append([index[t] for t in tokens])
        if len(classes) < 2:
            raise ValueError(f"manifest {self.path}: found only the classes {classes}; a classification task needs at least 2")
        self.num_classes, self.class_names = len(classes), classes
        if task == "multiclass":
            return keep, torch.tensor([t[0] for t in targets], dtype=torch.long)
        multi_hot = torch.zeros(len(targets), len(classes), dtype=torch.long)
        for j, t in enumerate(targets):
            multi_hot[j, t] = 1
        return keep, multi_hot

    def _assign_splits(self, n_rows: int, splits: list[str | None], row_index: list[int],
                       labels: torch.Tensor) -> list[str]:
        if all(s is not None for s in splits):
            return splits  # type: ignore[return-value]
        # seeded by the row's position among all manifest rows, so a skipped row moves no other row (stratified:
        # its class's count changes, which may move a row at a split boundary)
        generator = torch.Generator().manual_seed(self.data_seed)
        perm = torch.randperm(n_rows, generator=generator)
        rank = torch.empty(n_rows, dtype=torch.long)
        rank[perm] = torch.arange(n_rows)
        if self.stratify and self.task == "multiclass":
            self.stratified = True
            return self._stratified_splits([int(rank[i]) for i in row_index], labels.tolist(), generator)
        if self.stratify:
            log.info("data.stratify: a %s task has no single class per row to stratify by; plain seeded split",
                     self.task)
        n_train = int(round(self.split_fractions[0] * n_rows))
        n_val = int(round(self.split_fractions[1] * n_rows))
        names = []
        for i in row_index:
            r = int(rank[i])
            names.append("train" if r < n_train else "val" if r < n_train + n_val else "test")
        return names

    def _stratified_splits(self, ranks: list[int], labels: list[int], generator: torch.Generator) -> list[str]:
        """Each class's rows in their seeded order: the first train, the next validate, the rest test."""
        members: dict[int, list[int]] = {k: [] for k in range(self.num_classes)}
        for j in sorted(range(len(ranks)), key=ranks.__getitem__):
            members[labels[j]].append(j)
        order = torch.randperm(self.num_classes, generator=generator).tolist()
        counts = stratified_counts([len(members[k]) for k in range(self.num_classes)], self.split_fractions, order)
        names = [""] * len(ranks)
        for k, (n_train, n_val, _) in enumerate(counts):
            for position, j in enumerate(members[k]):
                names[j] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
        return names

    # --- decoding ------------------------------------------------------------------
    def _file(self, row: Row, kind: str) -> Path | None:
        """The row's file for `kind`, or None when it is absent (allow_missing) or bad (counted / raised)."""
        value = str(_cell(row.values[self.columns[kind]]))
        path = Path(value)
        path = path if path.is_absolute() else self.path.parent / path
        if not path.is_file():
            if self.allow_missing:
                row.absent.add(kind)
                return None
            self.errors("missing_file", f"{self._where(row, self.columns[kind])}: {kind} file not found: {path} "
                                        "(data.allow_missing=true makes it an absent modality)", FileNotFoundError)
            raise _SkipRow
        return path

    def _decode_image(self, row: Row) -> torch.Tensor | None:
        path = self._file(row, "image")
        if path is None:
            return None
        try:
            img = read_image(path)
        except ValueError as e:
            self.errors("unreadable_image", f"{self._where(row, self.columns['image'])}: {e}")
            raise _SkipRow from None
        return image_pixels(img, self.image_size, self.image_channels)

    def _decode_audio(self, row: Row) -> torch.Tensor | None:
        path = self._file(row, "audio")
        if path is None:
            return None
        try:
            wave, _ = read_wav(path, self.sample_rate)
        except ValueError as e:
            self.errors("unreadable_audio", f"{self._where(row, self.columns['audio'])}: {e}")
            raise _SkipRow from None
        return fix_length(wave, self.audio_length)

    @property
    def audio_length(self) -> int:
        return int(round(self.audio_seconds * self.sample_rate))

    def _audio_features(self, waves: torch.Tensor) -> torch.Tensor:
        return wave_features(waves, self.sample_rate, self.audio_features, self.n_fft, self.hop, self.n_mels, self.audio_length)

    # --- build ---------------------------------------------------------------------
    def build_splits(self) -> dict[str, TensorDictDataset]:
        require_file(self.path, "manifest", "set data.path to a .csv, .tsv or .jsonl file")
        header, rows = read_rows(self.path)
        if not rows:
            raise ValueError(f"manifest {self.path} has a header but no rows")
        self.columns = self._infer_columns(header, rows)
        log.info("manifest %s: columns %s", self.path, self.columns)
        line_index = {id(r): i for i, r in enumerate(rows)}
        parsed = self._parse_rows(rows)
        if not parsed:
            raise ValueError(f"manifest {self.path}: no usable rows (skipped: {self.skipped})")
        keep, labels = self._labels(parsed)
        parsed = [parsed[i] for i in keep]

        # decode every file once; a row whose file is bad is skipped (or raises) here
        images, waves, decoded, kept_labels = [], [], [], []
        for j, (row, _, split) in enumerate(parsed):
            try:
                image = self._decode_image(row) if "image" in self.columns and "image" not in row.absent else None
                wave = self._decode_audio(row) if "audio" in self.columns and "audio" not in row.absent else None
            except _SkipRow:
                continue
            if len(row.absent) == len(self.columns):
                self.errors.count("no_modality")
                log.warning("%s: every input is missing; skipped", self._where(row))
                continue
            images.append(image)
            waves.append(wave)
            decoded.append((row, split))
            kept_labels.append(j)
        if not decoded:
            raise ValueError(f"manifest {self.path}: no usable rows (skipped: {self.skipped})")
        labels = labels[kept_labels]
        rows_kept = [r for r, _ in decoded]
        splits = self._assign_splits(len(rows), [s for _, s in decoded], [line_index[id(r)] for r in rows_kept], labels)
        train = torch.tensor([s == "train" for s in splits])
        if not train.any():
            raise ValueError(f"manifest {self.path}: no usable row is in the training split")

        tensors: dict[str, torch.Tensor] = {}
        present = {m: torch.tensor([m not in r.absent for r in rows_kept]) for m in self.columns}
        specs: dict[str, ModalitySpec] = {}
        if "image" in self.columns:
            tensors["image"] = self._image_tensor(images, present["image"], train)
            specs["image"] = ModalitySpec("image", tuple(tensors["image"].shape[1:]))
        if "audio" in self.columns:
            tensors["audio"] = self._audio_tensor(waves, present["audio"], train)
            specs["audio"] = ModalitySpec("audio", tuple(tensors["audio"].shape[1:]), sample_rate=self.sample_rate)
        if "text" in self.columns:
            if self.tokenizer:
                tensors["text"], tensors["text_mask"], vocab_size = self._hf_text_tensor(rows_kept, present["text"])
            else:
                tensors["text"], tensors["text_mask"] = self._text_tensor(rows_kept, present["text"], train)
                vocab_size = len(self.vocabulary)
            specs["text"] = ModalitySpec("text", tuple(tensors["text"].shape[1:]), dtype="int64", vocab_size=vocab_size,
                                         has_mask=True, extra={"tokenizer": self.tokenizer} if self.tokenizer else {})
        if "tabular" in self.columns:
            tensors["tabular"] = self._tabular_tensor(rows_kept, present["tabular"], train)
            specs["tabular"] = ModalitySpec("tabular", tuple(tensors["tabular"].shape[1:]))
        tensors["label"] = labels
        tensors["present"] = torch.stack([present[m] for m in self.columns], 1)
        self._specs = specs

        full = TensorDictDataset(tensors)
        out: dict[str, TensorDictDataset] = {}
        for name in ("train", "val", "test"):
            index = torch.tensor([i for i, s in enumerate(splits) if s == name], dtype=torch.long)
            out[name] = full.subset(index)
        if "image" in self.columns and (self.augment["crop_padding"] or self.augment["hflip"]):
            out["train"] = AugmentedDataset(out["train"].tensors, RandomCropFlip(
                "image", self.augment["crop_padding"], self.augment["hflip"], fill=self._black))
        if self.skipped:
            log.warning("manifest %s: skipped %s", self.path, self.skipped)
        return out

    def _image_tensor(self, images: list, present: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
        decoded = [im for im in images if im is not None]
        channels = self.image_channels or (1 if all(im.shape[0] == 1 for im in decoded) else 3)
        s = self.image_size
        x = torch.zeros(len(images), channels, s, s)
        for i, im in enumerate(images):
            if im is not None:
                x[i] = im.float().div(255).expand(channels, s, s)  # greyscale images fill every channel
        observed = x[train & present]
        mean = torch.tensor(self.image_mean, dtype=torch.float32) if self.image_mean is not None else \
            (observed.mean((0, 2, 3)) if len(observed) else torch.full((channels,), 0.5))
        std = torch.tensor(self.image_std, dtype=torch.float32) if self.image_std is not None else \
            (observed.std((0, 2, 3), correction=0).clamp_min(1e-6) if len(observed) else torch.full((channels,), 0.5))
        if mean.numel() not in (1, channels) or std.numel() not in (1, channels):
            raise ValueError(f"data.image_mean / data.image_std must give 1 or {channels} values, got {self.image_mean} / {self.image_std}")
        mean, std = mean.expand(channels), std.expand(channels)
        self.image_stats = {"mean": mean.tolist(), "std": std.tolist()}
        self._black = -mean / std
        x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return torch.where(present.view(-1, 1, 1, 1), x, torch.zeros(()))

    def _audio_tensor(self, waves: list, present: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([w if w is not None else torch.zeros(self.audio_length) for w in waves])
        feats = self._audio_features(stacked)
        observed = feats[train & present]
        if self.audio_features != "waveform" and len(observed):
            mean, std = observed.mean(), observed.std(correction=0).clamp_min(1e-6)
            self.audio_stats = {"mean": float(mean), "std": float(std)}
            feats = (feats - mean) / std
        return torch.where(present.view(-1, *[1] * (feats.dim() - 1)), feats, torch.zeros(()))

    def _text_tensor(self, rows: list[Row], present: torch.Tensor, train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        column = self.columns["text"]
        tokens = [tokenize(str(_cell(r.values[column]))) if p else [] for r, p in zip(rows, present.tolist())]
        counts = Counter(t for toks, is_train in zip(tokens, train.tolist()) if is_train for t in toks)
        frequent = sorted((t for t, c in counts.items() if c >= self.min_freq), key=lambda t: (-counts[t], t))
        self.vocabulary = ["<pad>", "<unk>", *frequent[: self.vocab_size_limit - 2]]
        ids = {t: i for i, t in enumerate(self.vocabulary)}
        length = max(1, min(self.max_text_length, max((len(t) for t in tokens), default=1)))
        pairs = [token_ids(toks, ids, length) for toks in tokens]
        return torch.stack([x for x, _ in pairs]), torch.stack([m for _, m in pairs])

    def _hf_text_tensor(self, rows: list[Row], present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Ids and mask from a local Hugging Face tokenizer (the one the text encoder's model was trained with)."""
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ImportError("data.tokenizer needs the optional [hf] extra: pip install -e '.[hf]'") from None
        if not Path(self.tokenizer).is_dir():
            raise FileNotFoundError(f"data.tokenizer={self.tokenizer}: no such folder (a local Hugging Face model or tokenizer directory)")
        try:
            tok = AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)
        except Exception as e:
            raise ValueError(f"data.tokenizer={self.tokenizer}: cannot load a tokenizer from it ({e})") from None
        column = self.columns["text"]
        texts = [str(_cell(r.values[column])) if p else "" for r, p in zip(rows, present.tolist())]
        batch = tok(texts, truncation=True, max_length=self.max_text_length, padding="longest", return_tensors="pt")
        mask = batch["attention_mask"].bool() & present[:, None]
        ids = torch.where(mask, batch["input_ids"].long(), torch.tensor(tok.pad_token_id or 0))
        return ids, mask, len(tok)

    def _tabular_tensor(self, rows: list[Row], present: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
        cols = self.columns["tabular"]
        x = torch.tensor([[float(_cell(r.values[c])) if p else 0.0 for c in cols] for r, p in zip(rows, present.tolist())],
                         dtype=torch.float32).reshape(len(rows), len(cols))
        observed = x[train & present]
        if len(observed):
            mean, std = observed.mean(0), observed.std(0, correction=0).clamp_min(1e-6)
            self.tabular_stats = {"mean": mean.tolist(), "std": std.tolist()}
            x = (x - mean) / std
        return torch.where(present[:, None], x, torch.zeros(()))


class _SkipRow(Exception):
    """A row's file was bad and the row was counted as skipped."""

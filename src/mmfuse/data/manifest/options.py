"""The manifest's settings, grouped by what they shape; each group checks its values and names the `data.*` key.

The field names are the keys of conf/data/manifest.yaml (which says what each does), so a config passes them as
flat keywords and `take` hands each group its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Sequence, TypeVar

from mmfuse.data.decode import AUDIO_FEATURES

MODALITY_KINDS = ("image", "audio", "text", "tabular")
TASKS = ("auto", "multiclass", "multilabel", "regression")

Options = TypeVar("Options")


def take(cls: type[Options], settings: dict[str, Any]) -> Options:
    """The `cls` group built from (and removed from) `settings`."""
    return cls(**{f.name: settings.pop(f.name) for f in fields(cls) if f.name in settings})


def label_text(value: Any) -> str:
    """A label as text: 3.0 and 3 name the same class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _at_least(minimum: int, **values: Any) -> None:
    for key, value in values.items():
        if value < minimum:
            raise ValueError(f"data.{key} must be >= {minimum}, got {value}")


@dataclass
class ColumnOptions:
    columns: dict[str, Any] | None = None
    modalities: Sequence[str] | None = None
    ignore: Sequence[str] = ("id",)

    def __post_init__(self):
        unknown = [k for k in dict(self.columns or {}) if k not in MODALITY_KINDS]
        if unknown:
            raise ValueError(f"data.columns has unknown modalities {unknown}; "
                             f"expected keys among {list(MODALITY_KINDS)}")
        chosen = self.modalities
        if chosen is not None and (not chosen or any(m not in MODALITY_KINDS for m in chosen)):
            raise ValueError(f"data.modalities={list(self.modalities)}; "
                             f"expected a non-empty subset of {list(MODALITY_KINDS)} or null")
        self.columns = {k: v for k, v in dict(self.columns or {}).items() if v}
        self.modalities = list(self.modalities) if self.modalities is not None else None
        self.ignore = set(self.ignore or ())


@dataclass
class LabelOptions:
    label_column: str = "label"
    task: str = "auto"
    classes: Sequence[Any] | None = None
    label_separator: str = "|"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"data.task={self.task!r}; expected one of {list(TASKS)}")
        self.classes = [label_text(c) for c in self.classes] if self.classes else None


@dataclass
class SplitOptions:
    split_column: str = "split"
    split: Sequence[float] = (0.8, 0.1, 0.1)
    data_seed: int = 0
    # off unless asked (the shipped data/manifest.yaml asks): a snapshot without the key keeps its old split
    stratify: bool = False

    def __post_init__(self):
        split = self.split
        if len(split) != 3 or any(s < 0 for s in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")
        self.split = tuple(split)
        self.stratify = bool(self.stratify)


@dataclass
class ImageOptions:
    image_size: int = 32
    image_channels: int | None = None
    image_mean: Sequence[float] | None = None
    image_std: Sequence[float] | None = None
    augment: dict[str, Any] | None = None

    def __post_init__(self):
        if self.image_channels not in (None, 1, 3):
            raise ValueError(f"data.image_channels must be 1, 3 or null, got {self.image_channels}")
        _at_least(1, image_size=self.image_size)
        self.augment = {"crop_padding": 0, "hflip": False, **dict(self.augment or {})}


@dataclass
class AudioOptions:
    sample_rate: int = 16000
    audio_seconds: float = 1.0
    audio_features: str = "logmel"
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 40

    def __post_init__(self):
        if self.audio_features not in AUDIO_FEATURES:
            raise ValueError(f"data.audio_features={self.audio_features!r}; expected one of {list(AUDIO_FEATURES)}")
        _at_least(1, sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop)
        if self.audio_seconds <= 0:
            raise ValueError(f"data.audio_seconds must be > 0, got {self.audio_seconds}")

    @property
    def length(self) -> int:
        """Samples per recording after cropping or padding."""
        return int(round(self.audio_seconds * self.sample_rate))


@dataclass
class TextOptions:
    vocab_size: int = 10000
    min_freq: int = 1
    max_text_length: int = 64
    tokenizer: str | None = None

    def __post_init__(self):
        _at_least(1, max_text_length=self.max_text_length, min_freq=self.min_freq)
        if self.vocab_size < 3:
            raise ValueError(f"data.vocab_size must be >= 3 (padding, unknown and one token), got {self.vocab_size}")
        self.tokenizer = str(self.tokenizer) if self.tokenizer else None

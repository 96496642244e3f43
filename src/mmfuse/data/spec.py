"""The modality spec: what a DataModule promises about each modality.

Encoders and heads are sized from these specs, so nothing downstream is
hard-coded to one data set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TASKS = ("multiclass", "multilabel", "regression")


@dataclass(frozen=True)
class ModalitySpec:
    """Shape and meaning of one modality's per-sample tensor.

    kind: image | text | audio | tabular | sequence (chooses sensible encoders)
    shape: per-sample shape without the batch dimension, e.g. (1, 28, 28)
    dtype: "float32" or "int64" (token ids)
    vocab_size: for token ids; id 0 is padding
    sample_rate: for waveforms and spectrograms, in Hz
    has_mask: the batch carries `<name>_mask` (B, T), True on real tokens
    """

    kind: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    vocab_size: int | None = None
    sample_rate: int | None = None
    has_mask: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

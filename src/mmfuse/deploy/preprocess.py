"""Raw inputs to an artifact's input tensors, following its preprocessing record (no Lightning, no Hydra).

Each modality's record names a reader:
- image: an image file, resized (shorter side) and centre-cropped to `size`,
  `channels` channels, scaled to [0, 1], normalised with `mean`/`std`;
- audio: a WAV (libsndfile) file, mono, resampled to `sample_rate`, cropped
  or zero-padded to `seconds`, log-mel/log spectrogram or waveform
  (`features`, `n_fft`, `hop`, `n_mels`), standardised with `mean`/`std`;
- text: a string or a .txt file, tokenised and mapped through `vocabulary`
  (0 = padding, 1 = unknown) to `length` ids with a mask;
- hf_text: the same through a local Hugging Face `tokenizer`;
- numbers: a list of values (`columns`), standardised with `mean`/`std`;
- array: a .npy file already holding the modality's tensor (`shape`).
The functions are those the data modules use in training (mmfuse.data.decode).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfuse.data.decode import (
    ARRAY_EXTENSIONS,
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    TEXT_EXTENSIONS,
    read_audio_file,
    read_image_file,
    token_ids,
    tokenize,
    wave_features,
)
from mmfuse.errors import UserError

KIND_EXTENSIONS = {
    "image": IMAGE_EXTENSIONS,
    "audio": AUDIO_EXTENSIONS,
    "text": TEXT_EXTENSIONS,
    "array": ARRAY_EXTENSIONS,
}
READER_KIND = {
    "image": "image",
    "audio": "audio",
    "text": "text",
    "hf_text": "text",
    "array": "array",
    "numbers": "numbers",
}
DESCRIBE = {
    "image": "an image file",
    "audio": "an audio file",
    "text": "a text (.txt) file",
    "array": "a .npy array",
    "numbers": "numbers",
}


def file_kind(path: str | Path) -> str | None:
    suffix = Path(path).suffix.lower()
    return next((k for k, exts in KIND_EXTENSIONS.items() if suffix in exts), None)


def expected(reader: str) -> str:
    kind = READER_KIND[reader]
    exts = sorted(KIND_EXTENSIONS.get(kind, ()))
    return DESCRIBE[kind] + (f" ({', '.join(exts[:6])}{', ...' if len(exts) > 6 else ''})" if exts else "")


def _standardise(x: torch.Tensor, mean: Any, std: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if mean is None or std is None:
        return x
    return (x - torch.tensor(mean, dtype=x.dtype).reshape(shape)) / torch.tensor(std, dtype=x.dtype).reshape(shape)


class Preprocessor:
    """Builds the model's input dict from per-sample raw values (paths, strings, numbers)."""

    def __init__(self, meta: dict[str, Any]):
        self.modalities: dict[str, dict[str, Any]] = {m["name"]: m for m in meta["modalities"]}
        self.params: dict[str, dict[str, Any]] = meta["preprocessing"]
        self._vocab: dict[str, dict[str, int]] = {}
        self._tokenizers: dict[str, Any] = {}

    def reader(self, modality: str) -> str:
        return self.params[modality]["reader"]

    def describe(self) -> str:
        return ", ".join(f"{m} ({expected(self.reader(m))})" for m in self.modalities)

    def check_file(self, modality: str, path: Path, where: str) -> None:
        """A file of the wrong kind for `modality` is refused before it is decoded."""
        reader = self.reader(modality)
        want = READER_KIND[reader]
        got = file_kind(path)
        if want in KIND_EXTENSIONS and got != want:
            what = DESCRIBE[got] if got else f"a '{path.suffix or 'no extension'}' file"
            raise UserError(f"{where}: {path} is {what}, but modality '{modality}' expects {expected(reader)}")
        if not path.is_file():
            raise UserError(f"{where}: file not found: {path}")

    def tensor(self, modality: str, value: Any, where: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One sample's tensor (and token mask) for `modality` from a path, a string or a list of numbers."""
        p = self.params[modality]
        reader = p["reader"]
        try:
            if reader == "numbers":
                values = [float(v) for v in value]
                if len(values) != len(p["columns"]):
                    raise UserError(
                        f"{where}: {len(values)} values for '{modality}', expected {len(p['columns'])} ({p['columns']})"
                    )
                return _standardise(torch.tensor(values, dtype=torch.float32), p.get("mean"), p.get("std"), (-1,)), None
            if reader in ("text", "hf_text") and not (isinstance(value, Path) and file_kind(value) is not None):
                return self._text(modality, str(value))
            path = Path(value)
            self.check_file(modality, path, where)
            if reader == "image":
                x = read_image_file(path, p["size"], p["channels"])
                return _standardise(x, p.get("mean"), p.get("std"), (-1, 1, 1)), None
            if reader == "audio":
                wave = read_audio_file(path, p["sample_rate"], p["seconds"])
                length = int(round(p["seconds"] * p["sample_rate"]))
                feats = wave_features(
                    wave[None], p["sample_rate"], p["features"], p["n_fft"], p["hop"], p["n_mels"], length
                )[0]
                return _standardise(feats, p.get("mean"), p.get("std"), ()), None
            if reader in ("text", "hf_text"):
                return self._text(modality, path.read_text(encoding="utf-8"))
            if reader == "array":
                x = np.load(path, allow_pickle=False)
                if list(x.shape) != list(p["shape"]):
                    raise UserError(
                        f"{where}: {path} has shape {list(x.shape)}; modality '{modality}' expects {p['shape']}"
                    )
                return torch.from_numpy(np.ascontiguousarray(x)).to(getattr(torch, p["dtype"])), None
        except UserError:
            raise
        except (ValueError, OSError) as e:
            raise UserError(f"{where}: {str(e).splitlines()[0]}") from None
        raise UserError(f"modality '{modality}': unknown reader {reader!r} in the artifact")

    def _text(self, modality: str, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params[modality]
        if p["reader"] == "text":
            if modality not in self._vocab:
                self._vocab[modality] = {t: i for i, t in enumerate(p["vocabulary"])}
            return token_ids(tokenize(text), self._vocab[modality], p["length"])
        if modality not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[modality] = AutoTokenizer.from_pretrained(p["tokenizer"], local_files_only=True)
        tok = self._tokenizers[modality]
        enc = tok([text], truncation=True, max_length=p["length"], padding="max_length", return_tensors="pt")
        mask = enc["attention_mask"][0].bool()
        return torch.where(mask, enc["input_ids"][0].long(), torch.tensor(tok.pad_token_id or 0)), mask

    def empty(self, modality: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Zeros for an absent modality (its `present` entry is False)."""
        m = self.modalities[modality]
        x = torch.zeros(m["shape"], dtype=getattr(torch, m["dtype"]))
        return x, (torch.zeros(m["shape"][0], dtype=torch.bool) if m.get("has_mask") else None)

    def batch(self, samples: list[dict[str, Any]], wheres: list[str]) -> dict[str, torch.Tensor]:
        """The input dict for samples given as {modality: raw value}; a modality left out is absent."""
        columns: dict[str, list[torch.Tensor]] = {}
        present = torch.zeros(len(samples), len(self.modalities), dtype=torch.bool)
        for i, (sample, where) in enumerate(zip(samples, wheres)):
            for j, m in enumerate(self.modalities):
                given = sample.get(m) is not None
                x, mask = self.tensor(m, sample[m], where) if given else self.empty(m)
                present[i, j] = given
                columns.setdefault(m, []).append(x)
                if self.modalities[m].get("has_mask"):
                    columns.setdefault(f"{m}_mask", []).append(
                        mask if mask is not None else torch.ones(x.shape[0], dtype=torch.bool)
                    )
        return {"present": present, **{k: torch.stack(v) for k, v in columns.items()}}

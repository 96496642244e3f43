"""One modality's tensors from its decoded values, normalised with statistics of the training split's observed samples.

Each builder returns a `Modality`: the tensors, the spec, and the preprocessing record (`mmfuse predict` applies it
to a raw input: the same statistics or vocabulary). An absent sample's tensor is all zeros.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mmfuse.data.decode import token_ids, tokenize, wave_features
from mmfuse.data.manifest.options import AudioOptions, ImageOptions, TextOptions
from mmfuse.data.spec import ModalitySpec


class Modality(NamedTuple):
    tensors: dict[str, torch.Tensor]  # the modality's batch keys (and `<name>_mask`), over all samples
    spec: ModalitySpec
    preprocessing: dict[str, Any]     # the reader and its parameters, as MultimodalDataModule.preprocessing() gives


def _zero_absent(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return torch.where(present.view(-1, *[1] * (x.dim() - 1)), x, torch.zeros(()))


def image_modality(images: list[torch.Tensor | None], present: torch.Tensor, train: torch.Tensor,
                   options: ImageOptions) -> Modality:
    """(N, C, S, S) from uint8 pixels; greyscale images fill every channel; per-channel mean/std unless given."""
    decoded = [im for im in images if im is not None]
    channels = options.image_channels or (1 if all(im.shape[0] == 1 for im in decoded) else 3)
    s = options.image_size
    x = torch.zeros(len(images), channels, s, s)
    for i, im in enumerate(images):
        if im is not None:
            x[i] = im.float().div(255).expand(channels, s, s)
    observed = x[train & present]
    fallback = torch.full((channels,), 0.5)  # no observed training image: a neutral scale
    mean = torch.tensor(options.image_mean, dtype=torch.float32) if options.image_mean is not None else \
        (observed.mean((0, 2, 3)) if len(observed) else fallback)
    std = torch.tensor(options.image_std, dtype=torch.float32) if options.image_std is not None else \
        (observed.std((0, 2, 3), correction=0).clamp_min(1e-6) if len(observed) else fallback)
    if mean.numel() not in (1, channels) or std.numel() not in (1, channels):
        raise ValueError(f"data.image_mean / data.image_std must give 1 or {channels} values, "
                         f"got {options.image_mean} / {options.image_std}")
    mean, std = mean.expand(channels), std.expand(channels)
    x = _zero_absent((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), present)
    record = {"reader": "image", "size": s, "channels": channels, "mean": mean.tolist(), "std": std.tolist()}
    return Modality({"image": x}, ModalitySpec("image", tuple(x.shape[1:])), record)


def audio_modality(waves: list[torch.Tensor | None], present: torch.Tensor, train: torch.Tensor,
                   options: AudioOptions) -> Modality:
    """(N, 1, bands, frames) spectrograms standardised by one mean/std, or (N, 1, L) waveforms as they are."""
    stacked = torch.stack([w if w is not None else torch.zeros(options.length) for w in waves])
    feats = wave_features(stacked, options.sample_rate, options.audio_features, options.n_fft, options.hop,
                          options.n_mels, options.length)
    observed = feats[train & present]
    stats: dict[str, float | None] = {"mean": None, "std": None}
    if options.audio_features != "waveform" and len(observed):
        mean, std = observed.mean(), observed.std(correction=0).clamp_min(1e-6)
        stats = {"mean": float(mean), "std": float(std)}
        feats = (feats - mean) / std
    feats = _zero_absent(feats, present)
    record = {"reader": "audio", "sample_rate": options.sample_rate, "seconds": options.audio_seconds,
              "features": options.audio_features, "n_fft": options.n_fft, "hop": options.hop, "n_mels": options.n_mels,
              **stats}
    spec = ModalitySpec("audio", tuple(feats.shape[1:]), sample_rate=options.sample_rate)
    return Modality({"audio": feats}, spec, record)


def text_modality(texts: list[str], train: torch.Tensor, options: TextOptions) -> Modality:
    """(N, T) ids over the training split's most frequent tokens (0 padding, 1 unknown) and the (N, T) mask.

    An absent text is "" (no tokens); T is the longest text's token count, at most max_text_length.
    """
    tokens = [tokenize(t) for t in texts]
    counts = Counter(t for toks, is_train in zip(tokens, train.tolist()) if is_train for t in toks)
    frequent = sorted((t for t, c in counts.items() if c >= options.min_freq), key=lambda t: (-counts[t], t))
    vocabulary = ["<pad>", "<unk>", *frequent[: options.vocab_size - 2]]
    ids = {t: i for i, t in enumerate(vocabulary)}
    length = max(1, min(options.max_text_length, max((len(t) for t in tokens), default=1)))
    pairs = [token_ids(toks, ids, length) for toks in tokens]
    x, mask = torch.stack([x for x, _ in pairs]), torch.stack([m for _, m in pairs])
    spec = ModalitySpec("text", (length,), dtype="int64", vocab_size=len(vocabulary), has_mask=True)
    record = {"reader": "text", "vocabulary": vocabulary, "length": length}
    return Modality({"text": x, "text_mask": mask}, spec, record)


def hf_text_modality(texts: list[str], present: torch.Tensor, options: TextOptions) -> Modality:
    """Ids and mask from a local Hugging Face tokenizer (the one the text encoder's model was trained with)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ImportError("data.tokenizer needs the optional [hf] extra: pip install -e '.[hf]'") from None
    if not Path(options.tokenizer).is_dir():
        raise FileNotFoundError(f"data.tokenizer={options.tokenizer}: no such folder "
                                "(a local Hugging Face model or tokenizer directory)")
    try:
        tok = AutoTokenizer.from_pretrained(options.tokenizer, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
        raise ValueError(f"data.tokenizer={options.tokenizer}: cannot load a tokenizer from it ({e})") from None
    batch = tok(texts, truncation=True, max_length=options.max_text_length, padding="longest", return_tensors="pt")
    mask = batch["attention_mask"].bool() & present[:, None]
    ids = torch.where(mask, batch["input_ids"].long(), torch.tensor(tok.pad_token_id or 0))
    spec = ModalitySpec("text", tuple(ids.shape[1:]), dtype="int64", vocab_size=len(tok), has_mask=True,
                        extra={"tokenizer": options.tokenizer})
    record = {"reader": "hf_text", "tokenizer": options.tokenizer, "length": ids.shape[1]}
    return Modality({"text": ids, "text_mask": mask}, spec, record)


def tabular_modality(values: list[list[Any]], present: torch.Tensor, train: torch.Tensor,
                     columns: list[str]) -> Modality:
    """(N, D) numbers, one column each, standardised per column."""
    x = torch.tensor([[float(v) if p else 0.0 for v in row] for row, p in zip(values, present.tolist())],
                     dtype=torch.float32).reshape(len(values), len(columns))
    observed = x[train & present]
    stats: dict[str, list[float] | None] = {"mean": None, "std": None}
    if len(observed):
        mean, std = observed.mean(0), observed.std(0, correction=0).clamp_min(1e-6)
        stats = {"mean": mean.tolist(), "std": std.tolist()}
        x = (x - mean) / std
    x = _zero_absent(x, present)
    return Modality({"tabular": x}, ModalitySpec("tabular", (len(columns),)),
                    {"reader": "numbers", "columns": list(columns), **stats})

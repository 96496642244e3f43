"""Raw inputs to model tensors, shared by the data modules and `mmfuse predict`.

Only torch, torchvision and numpy: `mmfuse predict` and exported artifacts
use these functions without Lightning or Hydra, so a file is turned into
exactly the tensor the model saw in training.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from mmfuse.data.audio import fix_length, log_spectrogram, read_wav, spectrogram_frames
from mmfuse.data.readers import read_image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
TEXT_EXTENSIONS = {".txt"}
ARRAY_EXTENSIONS = {".npy"}
AUDIO_FEATURES = ("logmel", "log", "waveform")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
TOKEN = re.compile(r"\w+|[^\w\s]")
PAD, UNK = 0, 1


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return TOKEN.findall(text.lower())


def token_ids(tokens: list[str], ids: dict[str, int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(length,) int64 ids (0 = padding, 1 = unknown) and the (length,) mask of real tokens."""
    row = [ids.get(t, UNK) for t in tokens[:length]]
    x = torch.zeros(length, dtype=torch.long)
    x[: len(row)] = torch.tensor(row, dtype=torch.long)
    return x, torch.arange(length) < len(row)


def image_pixels(img, size: int, channels: int | None) -> torch.Tensor:
    """uint8 (C, size, size): shorter side resized to `size`, centre-cropped; C from `channels` or the image's mode."""
    import torchvision.transforms.v2.functional as TF

    grey = channels == 1 or (channels is None and img.mode in GREY_MODES)
    t = TF.pil_to_tensor(img.convert("L" if grey else "RGB"))
    t = TF.resize(t, [size], antialias=True)
    return TF.center_crop(t, [size, size])


def wave_features(waves: torch.Tensor, sample_rate: int, features: str, n_fft: int, hop: int, n_mels: int | None,
                  length: int) -> torch.Tensor:
    """(N, 1, bands, frames) log(-mel) spectrograms, or (N, 1, L) waveforms, of (N, L) waves."""
    if features == "waveform":
        return waves[:, None, :]
    n_mels = n_mels if features == "logmel" else None
    chunks = [log_spectrogram(w, sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels) for w in waves.split(1024)]
    if not chunks:
        return torch.zeros(0, 1, n_mels or n_fft // 2 + 1, spectrogram_frames(length, hop))
    return torch.cat(chunks)[:, None]


def read_image_file(path: str | Path, size: int, channels: int) -> torch.Tensor:
    """float (channels, size, size) in [0, 1]; greyscale images fill every channel."""
    pixels = image_pixels(read_image(path), size, channels)
    return pixels.float().div(255).expand(channels, size, size)


def read_audio_file(path: str | Path, sample_rate: int, seconds: float) -> torch.Tensor:
    """(L,) mono waveform at `sample_rate`, cropped from the start or zero-padded to `seconds`."""
    wave, _ = read_wav(path, sample_rate)
    return fix_length(wave, int(round(seconds * sample_rate)))

"""Fixed low-level features for early (input-level) fusion.

Early fusion joins modalities before any learned modality-specific network,
so each modality is turned into a flat vector by a parameter-free transform:
pooled pixels or spectrogram bins, the log-magnitude spectrum of a waveform,
bag-of-words frequencies of token ids, tabular features as they are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmfuse.data.spec import ModalitySpec

MAX_SIDE = 16      # images and spectrograms are average-pooled to at most 16 x 16 per channel
MAX_BINS = 128     # waveform spectra are average-pooled to at most 128 bins per channel


class InputStem(nn.Module):
    """Parameter-free map of one modality's input to a flat (B, out_dim) vector."""

    def __init__(self, spec: ModalitySpec):
        super().__init__()
        self.spec = spec
        shape = spec.shape
        if spec.dtype == "int64":
            if not spec.vocab_size:
                raise ValueError(f"early fusion needs a vocab_size for token modality {spec}")
            self.mode, self.out_dim = "bag", spec.vocab_size
        elif len(shape) == 3:
            h, w = min(shape[1], MAX_SIDE), min(shape[2], MAX_SIDE)
            self.mode, self.size, self.out_dim = "pool2d", (h, w), shape[0] * h * w
        elif len(shape) == 2:
            bins = min(shape[1] // 2 + 1, MAX_BINS)
            self.mode, self.size, self.out_dim = "spectrum", bins, shape[0] * bins
        else:
            self.mode = "flat"
            self.out_dim = 1
            for s in shape:
                self.out_dim *= s

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "bag":
            valid = (x != 0) if mask is None else mask.bool() & (x != 0)
            counts = torch.zeros(x.shape[0], self.out_dim, device=x.device)
            counts.scatter_add_(1, x * valid, valid.float())
            counts[:, 0] = 0
            return counts / counts.sum(1, keepdim=True).clamp_min(1.0)
        if self.mode == "pool2d":
            return F.adaptive_avg_pool2d(x, self.size).flatten(1)
        if self.mode == "spectrum":
            spectrum = torch.log1p(torch.fft.rfft(x.float(), dim=-1).abs())
            return F.adaptive_avg_pool1d(spectrum, self.size).flatten(1)
        return x.flatten(1)

"""Image encoders."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.base import Encoder


def conv_block(c_in: int, c_out: int, dims: int, pool: bool) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    layers: list[nn.Module] = [conv(c_in, c_out, 3, padding=1), norm(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append((nn.MaxPool2d if dims == 2 else nn.MaxPool1d)(2))
    return nn.Sequential(*layers)


class ConvEncoder(Encoder):
    """A small CNN over (C, H, W) images or (C, L) signals.

    Each stage is conv3 -> BN -> ReLU -> max-pool(2) (no pooling once the
    map is smaller than 4); the final feature map gives the tokens
    (B, positions, out_dim) after a linear projection, and the pooled
    embedding is their mean.
    """

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, channels: tuple[int, ...] = (16, 32)):
        super().__init__(spec, out_dim)
        if len(spec.shape) not in (2, 3):
            raise ValueError(f"ConvEncoder needs a (C, L) or (C, H, W) input, got shape {spec.shape}")
        dims = len(spec.shape) - 1
        size = min(spec.shape[1:])
        stages, c_in = [], spec.shape[0]
        for c_out in channels:
            stages.append(conv_block(c_in, c_out, dims, pool=size >= 4))
            size = size // 2 if size >= 4 else size
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.project = nn.Linear(c_in, out_dim)

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.features(x).flatten(2).transpose(1, 2)  # (B, positions, C)
        tokens = self.project(fmap)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.features(x).flatten(2).mean(-1))


class ImageCNN(ConvEncoder):
    """ConvEncoder for image modalities (C, H, W)."""

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, channels: tuple[int, ...] = (16, 32)):
        if len(spec.shape) != 3:
            raise ValueError(f"ImageCNN needs a (C, H, W) modality, got shape {spec.shape} ({spec.kind})")
        super().__init__(spec, out_dim, tuple(channels))

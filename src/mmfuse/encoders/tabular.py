"""Tabular encoders."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.base import Encoder


def mlp(dims: list[int], dropout: float = 0.0, final_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class TabularMLP(Encoder):
    """MLP over a flat feature vector (D,) -> (out_dim,). One token: the embedding itself."""

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, hidden: tuple[int, ...] = (64,), dropout: float = 0.0):
        super().__init__(spec, out_dim)
        in_dim = 1
        for s in spec.shape:
            in_dim *= s
        self.net = mlp([in_dim, *hidden, out_dim], dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x.flatten(1))

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.forward(x)[:, None, :]
        return emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)

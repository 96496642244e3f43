"""Prediction heads."""
from __future__ import annotations

from torch import nn

from mmfuse.encoders.tabular import mlp


class MLPHead(nn.Module):
    """(B, in_dim) -> hidden layers (ReLU, dropout) -> (B, out_dim) scores."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (128,), dropout: float = 0.1):
        super().__init__()
        body = mlp([in_dim, *hidden], dropout) if hidden else nn.Identity()
        self.net = nn.Sequential(body, nn.Linear(hidden[-1] if hidden else in_dim, out_dim))

    def forward(self, x):
        return self.net(x)

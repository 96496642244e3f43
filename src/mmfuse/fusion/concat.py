"""Intermediate fusion by concatenation."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.fusion.base import Fusion


class ConcatFusion(Fusion):
    """z = [h_1; h_2; ...; h_M], out_dim = sum_m d_m.

    A missing modality's embedding is replaced by a learned per-modality
    "missing" vector, so the head can tell absence from a zero embedding.
    """

    min_modalities = 1

    def __init__(self, in_dims: dict[str, int], dropout: float = 0.0):
        super().__init__(in_dims)
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in in_dims.items()})
        self.dropout = nn.Dropout(dropout)
        self.out_dim = sum(in_dims.values())

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        parts = [
            torch.where(present[:, i : i + 1], feats[m], self.missing[m].to(feats[m].dtype).expand_as(feats[m]))
            for i, m in enumerate(self.modalities)
        ]
        return self.dropout(torch.cat(parts, dim=-1))

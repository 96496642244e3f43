"""Tensor fusion: every multiplicative interaction between the modalities, made explicit."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion


def with_constant_one(h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """[h; 1] for present rows and [0, ..., 0, 1] for absent ones: (B, d) -> (B, d + 1)."""
    h = torch.where(present.unsqueeze(-1), h, torch.zeros_like(h))
    return torch.cat([h, h.new_ones(h.shape[0], 1)], dim=-1)


class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al., 2017).

    h_m = P_m x_m (a linear projection to `proj_dim`, or x_m itself when
    proj_dim is None), then
    z = vec([h_1; 1] (x) [h_2; 1] (x) ... (x) [h_M; 1])
    in: M >= 2 embeddings (B, d_m); out: (B, prod_m (p_m + 1)), p_m the
    (projected) width. The appended 1 keeps every lower-order term, the
    unimodal ones included, inside the product.

    Missing modality: its vector becomes [0, ..., 0, 1], so only the constant
    remains and the sample keeps exactly the terms of the other modalities.
    """

    def __init__(self, in_dims: dict[str, int], proj_dim: int | None = 8, max_features: int = 1_000_000):
        super().__init__(in_dims)
        if proj_dim is not None and proj_dim < 1:
            raise ValueError(f"fusion=tensor: fusion.proj_dim must be a positive width or null, got {proj_dim}")
        widths = {m: proj_dim or d for m, d in in_dims.items()}
        out_dim = math.prod(w + 1 for w in widths.values())
        # checked before any layer exists: the product grows exponentially with M
        if out_dim > max_features:
            raise ValueError(
                f"fusion=tensor: the outer product of widths {widths} (+1 each) has {out_dim:,} features, "
                f"more than fusion.max_features={max_features:,}; use fusion=lowrank or a smaller fusion.proj_dim"
            )
        self.project = nn.ModuleDict({m: nn.Linear(d, proj_dim) for m, d in in_dims.items()}) if proj_dim else None
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        z = None
        for i, m in enumerate(self.modalities):
            h = self.project[m](feats[m]) if self.project is not None else feats[m]
            h = with_constant_one(h, present[:, i])
            z = h if z is None else (z.unsqueeze(-1) * h.unsqueeze(1)).flatten(1)
        return z

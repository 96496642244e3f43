"""Attention over modalities: a learned, per-sample weighting of the modality embeddings."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.fusion.base import Fusion


class AttentionFusion(Fusion):
    """Additive attention pooling over modalities (Bahdanau et al., 2015, applied across modalities).

    h_m = P_m x_m                       (B, out_dim) each
    s_m = v^T tanh(W h_m)               one score per modality, W, v shared
    a   = softmax over m of s           (B, M)
    z   = sum_m a_m h_m                 (B, out_dim)
    Unlike the gated unit, one weight per modality (not per feature), which
    also makes `a` readable as "how much each modality counted".

    Missing modality: its score is set to -inf, so the weights renormalise
    over the present modalities.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int = 64, hidden: int = 32):
        super().__init__(in_dims)
        self.project = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        # no bias on the last layer: softmax ignores a shift shared by all modalities, so it could never learn
        self.score = nn.Sequential(nn.Linear(out_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.out_dim = out_dim

    def weights(self, h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, M) attention weights of the projected embeddings h (B, M, out_dim)."""
        return self.score(h).squeeze(-1).masked_fill(~present, float("-inf")).softmax(dim=1)

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        h = torch.stack([self.project[m](feats[m]) for m in self.modalities], dim=1)
        h = h.masked_fill(~present.unsqueeze(-1), 0.0)  # 0 * inf would leak a bad absent input into the sum
        return (self.weights(h, present).unsqueeze(-1) * h).sum(1)

"""Gated multimodal unit: a learned, per-feature choice among the modalities."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.fusion.base import Fusion, zero_absent


class GatedMultimodalUnit(Fusion):
    """Gated Multimodal Unit, GMU (Arevalo et al., 2017), for M modalities.

    h_m = tanh(W_m x_m)                 (B, out_dim) each
    a   = W_z [x_1; ...; x_M]           (B, M, out_dim)
    g   = softmax over m of a           per feature
    z   = sum_m g_m * h_m               (B, out_dim)
    For M = 2, softmax of two logits is the sigmoid of their difference,
    i.e. the paper's z = s h_1 + (1 - s) h_2 with s = sigmoid(W_z [x_1; x_2]).

    Missing modality: its x_m is zeroed before the gate and its logits set to
    -inf, so the gates renormalise over the present modalities.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int = 64):
        super().__init__(in_dims)
        self.transforms = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        self.gate = nn.Linear(sum(in_dims.values()), len(in_dims) * out_dim)
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        xs = [zero_absent(feats[m], present[:, i]) for i, m in enumerate(self.modalities)]
        h = torch.stack([torch.tanh(self.transforms[m](x)) for m, x in zip(self.modalities, xs)], dim=1)
        logits = self.gate(torch.cat(xs, -1)).view(-1, len(self.modalities), self.out_dim)
        g = logits.masked_fill(~present.unsqueeze(-1), float("-inf")).softmax(dim=1)
        return (g * h).sum(1)

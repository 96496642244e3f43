"""Early (input-level) fusion."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.encoders.tabular import mlp
from mmfuse.fusion.base import Fusion


class EarlyFusion(Fusion):
    """z = MLP([s_1(x_1); ...; s_M(x_M); p]), out_dim = hidden[-1].

    s_m are parameter-free low-level features of the raw inputs (see
    `mmfuse.encoders.stems`), p the (M,) presence indicator; a missing
    modality's features are zeroed. All learning happens in the shared
    network after the join, which is what makes this *early* fusion.
    """

    min_modalities = 1
    uses_raw_inputs = True

    def __init__(self, in_dims: dict[str, int], hidden: tuple[int, ...] = (256, 128), dropout: float = 0.1):
        super().__init__(in_dims)
        if not hidden:
            raise ValueError("fusion=early needs at least one hidden layer width in fusion.hidden")
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in in_dims.items()})
        self.net = mlp([sum(in_dims.values()) + len(in_dims), *hidden], dropout)
        self.out_dim = hidden[-1]

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        p = present.to(next(iter(feats.values())).dtype)
        parts = [self.norms[m](feats[m]) * p[:, i : i + 1] for i, m in enumerate(self.modalities)]
        return self.net(torch.cat([*parts, p], dim=-1))

"""Low-rank multimodal fusion: tensor fusion without building the tensor."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion
from mmfuse.fusion.tensor import with_constant_one


class LowRankTensorFusion(Fusion):
    """Low-rank Multimodal Fusion, LMF (Liu et al., 2018).

    The weight of tensor fusion's linear layer is factored into `rank` terms,
    one factor W_m^(r) in R^{(d_m + 1) x out_dim} per modality and term:
    z = sum_r w_r * prod_m ([h_m; 1] W_m^(r)) + b     (products elementwise)
    in: M >= 2 embeddings (B, d_m); out: (B, out_dim).

    Missing modality: its vector becomes [0, ..., 0, 1], so each of its factors
    contributes only its last row (the learned bias path) to the product.
    """

    def __init__(self, in_dims: dict[str, int], rank: int = 4, out_dim: int = 64):
        super().__init__(in_dims)
        if rank < 1 or out_dim < 1:
            raise ValueError(
                f"fusion=lowrank: fusion.rank and fusion.out_dim must be positive, got rank={rank}, out_dim={out_dim}"
            )
        # std 1/sqrt(d+1) gives each factor's output unit scale, so the M-fold
        # product neither vanishes nor explodes as M grows (Xavier, as in the
        # paper's code, shrinks it geometrically with M)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(rank, d + 1, out_dim) / math.sqrt(d + 1)) for m, d in in_dims.items()}
        )
        self.rank_weights = nn.Parameter(torch.randn(1, rank) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(1, out_dim))
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        product = None
        for i, m in enumerate(self.modalities):
            h = with_constant_one(feats[m], present[:, i])
            term = torch.einsum("bd,rdo->bro", h, self.factors[m])  # (B, rank, out_dim)
            product = term if product is None else product * term
        return torch.einsum("kr,bro->bo", self.rank_weights, product) + self.bias

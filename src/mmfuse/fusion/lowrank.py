"""Low-rank multimodal fusion: tensor fusion without building the tensor."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion, zero_absent
from mmfuse.fusion.tensor import InteractionGates


class LowRankTensorFusion(Fusion):
    """Low-rank Multimodal Fusion, LMF (Liu et al., 2018), its interactions phased in.

    The weight of tensor fusion's linear layer is factored into `rank` terms,
    one factor W_m^(r) in R^{(d_m + 1) x out_dim} per modality and term. The
    rows of W_m^(r) that multiply h_m give u_m^(r) = h_m U_m^(r), the last one
    (which the appended 1 multiplies) c_m^(r), and LMF's product splits by
    interaction order k, the number of modalities whose u a term multiplies:
    prod_m ([h_m; 1] W_m^(r)) = prod_m (c_m + u_m) = sum_k e_k,
    e_k = sum over the k-subsets S of prod_{m in S} u_m prod_{m not in S} c_m
    z = sum_r w_r sum_{k>=1} a_k e_k^(r) + b     (products elementwise)
    a_1 = 1, a_k for k >= 2 learned from `interaction_init` (see
    InteractionGates; 1 gives LMF up to a constant). The e_k come from the
    recurrence e_k <- c_m e_k + u_m e_{k-1} over the modalities, M^2
    elementwise products. e_0 = prod_m c_m depends on no input, so the bias
    b stands for it (LMF's z = this z + sum_r w_r e_0^(r)): with the constant
    rows at 1 it would add sqrt(R) to every entry of z, an input-free offset
    in front of the head's ReLU layer that slowed learning on AV-MNIST and on
    the synthetic data (commit message and benchmarks/RESULTS.md).
    in: M >= 2 embeddings (B, d_m); out: (B, out_dim).

    Missing modality: its u_m is 0, so each of its factors contributes only
    its last row (the learned bias path) to the product.
    """

    def __init__(self, in_dims: dict[str, int], rank: int = 4, out_dim: int = 64, interaction_init: float = 0.0):
        super().__init__(in_dims)
        if rank < 1 or out_dim < 1:
            raise ValueError(
                f"fusion=lowrank: fusion.rank and fusion.out_dim must be positive, got rank={rank}, out_dim={out_dim}"
            )
        # std 1/sqrt(d+1) gives each u_m unit scale, so the M-fold product neither vanishes nor explodes as M grows
        # (Xavier, as in the paper's code, shrinks it geometrically with M). The constant rows start at 1, the
        # product's identity: with the interactions at 0 the fusion starts as sum_r w_r sum_m u_m + b, each
        # modality's term at its own scale rather than damped by a small random c_m (3 points on AV-MNIST hard)
        factors = {m: torch.randn(rank, d + 1, out_dim) / math.sqrt(d + 1) for m, d in in_dims.items()}
        for f in factors.values():
            f[:, -1] = 1.0
        self.factors = nn.ParameterDict({m: nn.Parameter(f) for m, f in factors.items()})
        # equal rank weights 1/sqrt(R): sum_r w_r U^(r) then has the scale of one factor whatever the seed (random w_r,
        # as published, scaled the fused vector by sqrt(sum_r w_r^2): 0.35 to 1.67 for 95% of seeds at R = 4)
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1 / math.sqrt(rank)))
        self.bias = nn.Parameter(torch.zeros(1, out_dim))
        self.gates = InteractionGates(len(in_dims), interaction_init)
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        by_order: list[torch.Tensor] = []  # e_0, e_1, ...: (B, rank, out_dim) each (e_0 (1, rank, out_dim))
        for i, m in enumerate(self.modalities):
            h = zero_absent(feats[m], present[:, i])
            u = torch.einsum("bd,rdo->bro", h, self.factors[m][:, :-1])
            c = self.factors[m][:, -1].unsqueeze(0)
            if not by_order:
                by_order = [c, u]
            else:
                by_order = [
                    c * by_order[0],
                    *(c * e + u * lower for e, lower in zip(by_order[1:], by_order)),
                    u * by_order[-1],
                ]
        interactions = sum(a * e for a, e in zip(self.gates.by_order()[1:], by_order[1:]))  # e_0 is in the bias
        return torch.einsum("kr,bro->bo", self.rank_weights, interactions) + self.bias

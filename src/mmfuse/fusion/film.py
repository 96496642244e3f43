"""FiLM: one modality scales and shifts the features of the others."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.fusion.base import Fusion, masked_mean


class FiLM(Fusion):
    """Feature-wise linear modulation (Perez et al., 2018).

    c: the `conditioner` modality's embedding (B, d_c); for every other
    modality m, h_m = P_m x_m (B, out_dim).
    [gamma - 1; beta] = G c             (B, 2 out_dim), G zero-initialised
    z = mean_m (gamma * h_m + beta) = gamma * mean_m h_m + beta    (B, out_dim)
    Starting from gamma = 1, beta = 0 makes the untrained layer a plain mean
    of the projections rather than a random rescaling of them.

    Missing modality: an absent conditioner gives the identity modulation
    (gamma = 1, beta = 0); the mean runs over the present modulated
    modalities only, and a sample with none of them present gets beta.
    """

    def __init__(self, in_dims: dict[str, int], conditioner: str | None = None, out_dim: int = 64):
        super().__init__(in_dims)
        conditioner = self.modalities[-1] if conditioner is None else conditioner
        if conditioner not in in_dims:
            raise ValueError(
                f"fusion=film: fusion.conditioner={conditioner!r} is not among the model's modalities {list(in_dims)}"
            )
        self.conditioner = conditioner
        self.modulated = [m for m in self.modalities if m != conditioner]
        self.project = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in self.modulated})
        self.generator = nn.Linear(in_dims[conditioner], 2 * out_dim)
        nn.init.zeros_(self.generator.weight)
        nn.init.zeros_(self.generator.bias)
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        is_present = dict(zip(self.modalities, present.unbind(1)))
        h = torch.stack([self.project[m](feats[m]) for m in self.modulated], dim=1)
        mean_h = masked_mean(h, torch.stack([is_present[m] for m in self.modulated], dim=1))
        delta_gamma, beta = self.generator(feats[self.conditioner]).chunk(2, dim=-1)
        conditioned = is_present[self.conditioner].unsqueeze(-1)
        gamma = torch.where(conditioned, 1 + delta_gamma, torch.ones_like(delta_gamma))
        beta = torch.where(conditioned, beta, torch.zeros_like(beta))
        return gamma * mean_h + beta

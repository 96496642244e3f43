"""Tensor fusion: every multiplicative interaction between the modalities, made explicit."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion, zero_absent


def with_constant_one(h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """[h; 1] for present rows and [0, ..., 0, 1] for absent ones: (B, d) -> (B, d + 1)."""
    h = zero_absent(h, present)
    return torch.cat([h, h.new_ones(h.shape[0], 1)], dim=-1)


def interaction_orders(widths: list[int]) -> torch.Tensor:
    """The order of each entry of vec([v_1; 1] (x) ... (x) [v_M; 1]), v_m of width w_m: how many of the v_m (not
    the appended 1s) it multiplies. 0: the constant, 1: a unimodal term, k >= 2: a k-modal interaction."""
    order = torch.zeros(1, dtype=torch.long)
    for w in widths:
        order = order.unsqueeze(-1) + torch.cat([torch.ones(w, dtype=torch.long), torch.zeros(1, dtype=torch.long)])
        order = order.flatten()
    return order


class InteractionGates(nn.Module):
    """One learned weight a_k per interaction order k = 2..M (orders 0 and 1 keep weight 1), starting at `init`.

    Why start at 0: products of the modalities' still-random features at full strength from the first step
    scramble each modality's gradient with the others' features, so a modality that is slow to learn alone (noisy
    audio on AV-MNIST) learns slower still. Starting at 0 the fusion is first additive in the modalities (what
    concatenation learns well) and adds each order of interaction as far as it lowers the loss; its gradient is
    not zero at 0. init = 1 is the published model.
    """

    def __init__(self, num_modalities: int, init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_modalities - 1,), float(init)))

    def by_order(self) -> torch.Tensor:
        """(M + 1,): the weight of orders 0, 1, ..., M."""
        return torch.cat([self.weight.new_ones(2), self.weight])


class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al., 2017), its interactions phased in.

    p_m = P_m h_m (a linear projection to `proj_dim`, or h_m itself when
    proj_dim is None), then
    T = vec([p_1; 1] (x) [p_2; 1] (x) ... (x) [p_M; 1]) * a_order,
    each entry weighted by a_k, k its interaction order (see InteractionGates: a_0 = a_1 = 1, a_k for k >= 2
    learned from `interaction_init`; 1 gives TFN's tensor exactly). The appended 1 keeps every lower-order
    term, the unimodal ones included, inside the product.
    z = [h_1; ...; h_M; T] with a projection, z = T without.
    in: M >= 2 embeddings (B, d_m); out: (B, sum_m d_m + prod_m (p_m + 1)) or (B, prod_m (d_m + 1)).
    The projection is there to bound the product's size; the unimodal terms do not grow with M, so z keeps them
    at the embeddings' full width (projected to 8, they lost 9 points on AV-MNIST hard against the full width).

    Missing modality: its vector becomes [0, ..., 0, 1] (and its h_m 0), so
    only the constant remains and the sample keeps exactly the terms of the other modalities.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        proj_dim: int | None = 8,
        max_features: int = 1_000_000,
        interaction_init: float = 0.0,
    ):
        super().__init__(in_dims)
        if proj_dim is not None and proj_dim < 1:
            raise ValueError(f"fusion=tensor: fusion.proj_dim must be a positive width or null, got {proj_dim}")
        widths = {m: proj_dim or d for m, d in in_dims.items()}
        product = math.prod(w + 1 for w in widths.values())
        # checked before any layer exists: the product grows exponentially with M
        if product > max_features:
            raise ValueError(
                f"fusion=tensor: the outer product of widths {widths} (+1 each) has {product:,} features, "
                f"more than fusion.max_features={max_features:,}; use fusion=lowrank or a smaller fusion.proj_dim"
            )
        self.project = nn.ModuleDict({m: nn.Linear(d, proj_dim) for m, d in in_dims.items()}) if proj_dim else None
        self.gates = InteractionGates(len(in_dims), interaction_init)
        self.register_buffer("orders", interaction_orders(list(widths.values())), persistent=False)
        self.out_dim = product + (sum(in_dims.values()) if self.project is not None else 0)

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        z, unimodal = None, []
        for i, m in enumerate(self.modalities):
            x = feats[m]
            if self.project is not None:  # the embedding joins at full width; its projection enters the product
                unimodal.append(zero_absent(x, present[:, i]))
                x = self.project[m](x)
            h = with_constant_one(x, present[:, i])
            z = h if z is None else (z.unsqueeze(-1) * h.unsqueeze(1)).flatten(1)
        return torch.cat([*unimodal, z * self.gates.by_order()[self.orders]], dim=-1)

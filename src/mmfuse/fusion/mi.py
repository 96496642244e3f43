"""Multiplicative interactions: one modality generates the weights applied to the others."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion, zero_absent

FORMS = ("matrix", "vector", "scalar")


class MultiplicativeInteraction(Fusion):
    """Multiplicative interaction layer (Jayakumar et al., 2020).

    c: the `context` modality's embedding (B, d_c); x = [h_1; ...] the other
    modalities' embeddings concatenated (B, d_x). A linear hypernetwork of c
    gives the layer applied to x:
    - matrix: z = x (V + U(c)) + b + B c,  U(c) in R^{d_x x out_dim};  out (B, out_dim)
    - vector: z = x * (1 + g + G c) + b + B c  (a diagonal W(c));      out (B, d_x)
    - scalar: z = x * (1 + g + G c) + b + B c  with G c a scalar;      out (B, d_x)
    V, b, g are the static (context-free) part; g starts at 0, so the
    vector and scalar gates start as the identity.

    Missing modality: an absent context is taken as c = 0, leaving the
    static part (W = V, or gate 1 + g); an absent modality of x is zeroed,
    so it adds nothing to x W(c).
    """

    def __init__(self, in_dims: dict[str, int], form: str = "matrix", context: str | None = None, out_dim: int = 64):
        super().__init__(in_dims)
        if form not in FORMS:
            raise ValueError(f"fusion=mi: fusion.form={form!r}; expected one of {list(FORMS)}")
        context = self.modalities[-1] if context is None else context
        if context not in in_dims:
            raise ValueError(
                f"fusion=mi: fusion.context={context!r} is not among the model's modalities {list(in_dims)}"
            )
        self.form, self.context = form, context
        self.inputs = [m for m in self.modalities if m != context]
        d_c, d_x = in_dims[context], sum(in_dims[m] for m in self.inputs)
        self.out_dim = out_dim if form == "matrix" else d_x
        if form == "matrix":
            self.static = nn.Linear(d_x, out_dim)
            self.weight_generator = nn.Linear(d_c, d_x * out_dim, bias=False)
            # scaled so that x U(c) starts at the size of x V rather than sqrt(d_c) times it
            nn.init.normal_(self.weight_generator.weight, std=1.0 / math.sqrt(d_c * d_x))
        else:
            self.gate_generator = nn.Linear(d_c, d_x if form == "vector" else 1)
            nn.init.zeros_(self.gate_generator.bias)
        self.bias_generator = nn.Linear(d_c, self.out_dim, bias=form != "matrix")

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        is_present = dict(zip(self.modalities, present.unbind(1)))
        x = torch.cat([zero_absent(feats[m], is_present[m]) for m in self.inputs], -1)
        c = zero_absent(feats[self.context], is_present[self.context])
        shift = self.bias_generator(c)
        if self.form == "matrix":
            dynamic = self.weight_generator(c).view(-1, x.shape[-1], self.out_dim)
            return self.static(x) + torch.bmm(x.unsqueeze(1), dynamic).squeeze(1) + shift
        return x * (1 + self.gate_generator(c)) + shift

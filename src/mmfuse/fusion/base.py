"""What every fusion strategy promises, and the checks they share."""
from __future__ import annotations

import torch
from torch import nn


class Fusion(nn.Module):
    """Base class.

    Class attributes tell the FusionModule how to drive a strategy:
    - min_modalities: fewer raises a clear error at build time.
    - uses_raw_inputs: fed parameter-free input stems instead of encoders (early fusion).
    - wants_tokens: also given each modality's token sequence `(tokens, mask)`.
    - produces_logits: returns class scores itself (late fusion); the model adds no head.
    """

    min_modalities: int = 2
    max_modalities: int | None = None
    uses_raw_inputs: bool = False
    wants_tokens: bool = False
    produces_logits: bool = False
    out_dim: int

    def __init__(self, in_dims: dict[str, int]):
        super().__init__()
        name = type(self).__name__
        if len(in_dims) < self.min_modalities:
            raise ValueError(f"fusion {name} needs at least {self.min_modalities} modalities, got {list(in_dims)}")
        if self.max_modalities is not None and len(in_dims) > self.max_modalities:
            raise ValueError(f"fusion {name} takes at most {self.max_modalities} modalities, got {list(in_dims)}")
        self.modalities = list(in_dims)
        self.in_dims = dict(in_dims)

    def stack(self, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [feats[m] for m in self.modalities]


def masked_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, M, ...) values, counting only present modalities."""
    w = present.to(values.dtype).reshape(*present.shape, *([1] * (values.dim() - 2)))
    return (values * w).sum(1) / w.sum(1).clamp_min(1.0)

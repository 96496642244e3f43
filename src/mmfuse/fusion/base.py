"""What every fusion strategy promises, and the checks they share.

The contract (docs/EXTENDING.md): any `nn.Module` built as `cls(in_dims={modality: width, ...}, **kwargs)`
(plus `num_classes=` when it produces logits), with an `out_dim` attribute and
`forward(feats, present, tokens=None) -> (B, out_dim)`. Subclassing `Fusion` adds the modality-count checks and
`stack`; a plain module gets the traits below at their defaults.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

# how the FusionModule drives a strategy; a module that does not say gets these
TRAITS: dict[str, Any] = {
    "min_modalities": 2,       # fewer raises a clear error at build time
    "max_modalities": None,    # more raises a clear error at build time (None: no limit)
    "uses_raw_inputs": False,  # fed parameter-free input stems instead of encoders (early fusion)
    "wants_tokens": False,     # also given each modality's token sequence `(tokens, mask)`
    "produces_logits": False,  # returns class scores itself (late fusion); the model adds no head
}


def trait(fusion: Any, name: str) -> Any:
    """A fusion class's or module's trait, at its default where it does not declare it."""
    return getattr(fusion, name, TRAITS[name])


def with_traits(module: nn.Module) -> nn.Module:
    """Give a plain module the traits it does not declare, so that every user of `model.fusion` can ask."""
    for name, default in TRAITS.items():
        if not hasattr(module, name):
            setattr(module, name, default)
    return module


class Fusion(nn.Module):
    """Base class. Class attributes (TRAITS above) tell the FusionModule how to drive a strategy."""

    min_modalities: int = TRAITS["min_modalities"]
    max_modalities: int | None = TRAITS["max_modalities"]
    uses_raw_inputs: bool = TRAITS["uses_raw_inputs"]
    wants_tokens: bool = TRAITS["wants_tokens"]
    produces_logits: bool = TRAITS["produces_logits"]
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


def zero_absent(h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(B, d) embeddings with the rows of absent samples (`present` (B,) False) set to 0."""
    return torch.where(present.unsqueeze(-1), h, torch.zeros_like(h))


def masked_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, M, ...) values, counting only present modalities."""
    w = present.to(values.dtype).reshape(*present.shape, *([1] * (values.dim() - 2)))
    return (values * w).sum(1) / w.sum(1).clamp_min(1.0)

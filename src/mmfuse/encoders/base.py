"""What every encoder promises."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec


class Encoder(nn.Module):
    """Base class: maps one modality's batch to (B, out_dim).

    Subclasses implement `tokens`; the pooled embedding defaults to the masked
    mean of the tokens, and encoders with a better pooled summary override
    `forward`.
    """

    out_dim: int

    def __init__(self, spec: ModalitySpec, out_dim: int):
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"encoder out_dim must be positive, got {out_dim}")
        self.spec = spec
        self.out_dim = out_dim

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled (B, D), tokens (B, T, D), token mask (B, T)) from one pass; token fusions call this."""
        tokens, token_mask = self.tokens(x, mask)
        weights = token_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0), tokens, token_mask


def require_kind(spec: ModalitySpec, kinds: tuple[str, ...], encoder: str) -> None:
    if spec.kind not in kinds:
        raise ValueError(
            f"encoder {encoder} expects a modality of kind {list(kinds)}, got kind {spec.kind!r} with shape "
            f"{spec.shape}"
        )

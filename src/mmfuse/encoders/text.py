"""Text encoders over token ids (id 0 is padding) with a (B, T) padding mask."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.base import Encoder, require_kind
from mmfuse.encoders.rnn import run_gru


def _mask_or_nonpad(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return mask.bool() if mask is not None else x != 0


class TextGRU(Encoder):
    """Embedding + bidirectional GRU over packed sequences (padding never enters the recurrence).

    tokens: per-step outputs projected to out_dim; pooled: the projection of
    the final forward and backward hidden states.
    """

    def __init__(
        self, spec: ModalitySpec, out_dim: int = 64, embed_dim: int = 32, hidden: int = 64, bidirectional: bool = True
    ):
        super().__init__(spec, out_dim)
        require_kind(spec, ("text", "sequence"), "TextGRU")
        if not spec.vocab_size:
            raise ValueError(f"TextGRU needs token ids with a vocab_size; the modality spec has none ({spec})")
        self.embed = nn.Embedding(spec.vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.project = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _, h_n = run_gru(self.gru, self.embed(x), _mask_or_nonpad(x, mask), outputs=False)
        return self.project(torch.cat(list(h_n), dim=-1))

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(x, mask)[1:]

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        mask = _mask_or_nonpad(x, mask)
        out, h_n = run_gru(self.gru, self.embed(x), mask)
        return self.project(torch.cat(list(h_n), dim=-1)), self.project(out), mask


class TextBag(Encoder):
    """Mean of token embeddings (EmbeddingBag, padding excluded) followed by an MLP."""

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, embed_dim: int = 64):
        super().__init__(spec, out_dim)
        require_kind(spec, ("text", "sequence"), "TextBag")
        if not spec.vocab_size:
            raise ValueError(f"TextBag needs token ids with a vocab_size; the modality spec has none ({spec})")
        self.embed = nn.Embedding(spec.vocab_size, embed_dim, padding_idx=0)
        self.bag = nn.EmbeddingBag(spec.vocab_size, embed_dim, mode="mean", padding_idx=0)
        self.bag.weight = self.embed.weight  # one table: tokens() and forward() agree
        self.net = nn.Sequential(nn.Linear(embed_dim, out_dim), nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            x = x * mask.long()
        return self.net(self.bag(x))

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _mask_or_nonpad(x, mask)
        return self.net(self.embed(x)), mask

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        return (self.forward(x, mask), *self.tokens(x, mask))

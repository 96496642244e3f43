"""Encoders for float feature sequences (T, d) with a (B, T) mask, e.g. per-frame acoustic or facial features."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.base import Encoder, require_kind
from mmfuse.encoders.rnn import run_gru


def compact(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the masked-in steps of each sequence to the front, keeping their order.

    Packed RNNs read the first `length` steps; data padded at the front (as the
    MOSI/MOSEI pickles are) or with gaps would otherwise feed padding into the
    recurrence. x: (B, T, d), mask: (B, T) -> the same shapes, left-aligned.
    """
    if not torch.compiler.is_exporting() and bool(mask[:, :1].all()) and bool((mask[:, :-1] >= mask[:, 1:]).all()):
        return x, mask  # already left-aligned
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)
    return x.gather(1, order.unsqueeze(-1).expand_as(x)), mask.gather(1, order)


class SequenceGRU(Encoder):
    """Linear input projection + bidirectional GRU over packed sequences (padding never enters the recurrence).

    x: (B, T, d) float features, mask: (B, T) bool (None: every step is real).
    tokens: per-step outputs projected to out_dim, real steps first, with their
    mask; pooled: the projection of the final forward and backward hidden states.
    """

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, proj_dim: int = 32, hidden: int = 64,
                 bidirectional: bool = True, dropout: float = 0.0):
        super().__init__(spec, out_dim)
        require_kind(spec, ("sequence",), "SequenceGRU")
        if len(spec.shape) != 2:
            raise ValueError(f"SequenceGRU needs a (T, d) float sequence, got shape {spec.shape}")
        self.input = nn.Linear(spec.shape[1], proj_dim)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(proj_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.project = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None, outputs: bool):
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        x, mask = compact(x, mask.bool())
        x = x * mask.unsqueeze(-1).to(x.dtype)  # an empty sequence reads one zero step, whatever its padding holds
        out, h_n = run_gru(self.gru, self.dropout(self.input(x)), mask, outputs=outputs)
        return out, h_n, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _, h_n, _ = self._run(x, mask, outputs=False)
        return self.project(torch.cat(list(h_n), dim=-1))

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(x, mask)[1:]

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled (B, out_dim), tokens (B, T, out_dim), token mask (B, T)) from one pass of the GRU."""
        out, h_n, mask = self._run(x, mask, outputs=True)
        return self.project(torch.cat(list(h_n), dim=-1)), self.project(out), mask

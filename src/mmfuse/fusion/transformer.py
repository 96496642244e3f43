"""Cross-modal transformer: self-attention over the joint sequence of every modality's tokens."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.fusion.base import Fusion


class TransformerFusion(Fusion):
    """Joint-sequence transformer fusion, after MulT (Tsai et al., 2019).

    t_m = P_m [h_m; tokens_m] + e_m     (B, 1 + T_m, d_model): the pooled embedding h_m as a
                                        summary token, then the tokens; e_m a learned modality embedding
    s   = [cls; t_1; ...; t_M]          (B, 1 + sum_m T_m, d_model)
    u   = TransformerEncoder(s)
    Self-attention over the joint sequence lets every token attend to every
    other modality's tokens, i.e. all of MulT's pairwise cross-modal
    attentions in one stack. The read-out (`readout`):
    - concat (default, as MulT): z = [u_1[0]; ...; u_M[0]], each modality's
      encoded summary token, concatenated                    (B, M * d_model)
    - cls: z = u[:, 0], a learned CLS token                   (B, d_model)
    - mean: z = masked mean of all encoded tokens             (B, d_model)
    With `pooled_tokens=True` each modality contributes one token, its
    embedding (B, d_m).

    Missing modality: all its tokens are key-padded, as are padded
    positions, and its slot of the concat read-out is zero. The CLS token
    (present only for readout=cls) is never masked; otherwise an all-masked
    row attends freely and its result is discarded, so no NaN arises.
    """

    wants_tokens = True

    def __init__(
        self,
        in_dims: dict[str, int],
        d_model: int = 64,
        depth: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        ff_mult: int = 2,
        readout: str = "concat",
        pooled_tokens: bool = False,
    ):
        super().__init__(in_dims)
        if d_model % heads:
            raise ValueError(f"fusion=transformer: fusion.d_model={d_model} must be divisible by fusion.heads={heads}")
        if readout not in ("concat", "cls", "mean"):
            raise ValueError(f"fusion=transformer: fusion.readout={readout!r}; expected concat, cls or mean")
        self.readout = readout
        cls_token = readout == "cls"
        # pooled mode needs only the embeddings, which spares the encoders their token pass
        self.wants_tokens = not pooled_tokens
        self.project = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in in_dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(in_dims), d_model) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02) if cls_token else None
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=ff_mult * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        # no final LayerNorm: normalising each summary token stalled learning of
        # synergistic labels (XOR-like) on the synthetic benchmark; the head copes with scale
        self.encoder = nn.TransformerEncoder(layer, depth, norm=None, enable_nested_tensor=False)
        self.out_dim = d_model * len(in_dims) if readout == "concat" else d_model

    def sequence(self, feats, present, tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint token sequence (B, T, d_model) and its validity mask (B, T), CLS excluded.

        Each modality's span starts with its pooled embedding (a summary token
        the read-out uses), followed by its token sequence unless pooled_tokens.
        """
        seqs, masks = [], []
        for i, m in enumerate(self.modalities):
            tok, tok_mask = feats[m].unsqueeze(1), torch.ones_like(present[:, :1])
            if self.wants_tokens:
                tok = torch.cat([tok, tokens[m][0]], dim=1)
                tok_mask = torch.cat([tok_mask, tokens[m][1].bool()], dim=1)
            seqs.append(self.project[m](tok) + self.modality_embedding[i])
            masks.append(tok_mask.bool() & present[:, i : i + 1])
        return torch.cat(seqs, dim=1), torch.cat(masks, dim=1)

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        if self.wants_tokens and tokens is None:
            raise ValueError(
                "fusion=transformer needs token sequences; set fusion.pooled_tokens=true to fuse embeddings"
            )
        seq, valid = self.sequence(feats, present, tokens)
        # masked keys are excluded from attention, but a non-finite masked value would still poison the sum
        seq = seq.masked_fill(~valid.unsqueeze(-1), 0.0)
        if self.cls is not None:
            seq = torch.cat([self.cls.expand(len(seq), -1, -1).to(seq.dtype), seq], dim=1)
            valid = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
            return self.encoder(seq, src_key_padding_mask=~valid)[:, 0]
        empty = ~valid.any(1, keepdim=True)
        # an all-masked row would softmax over nothing (NaN); attend freely there and discard the result
        out = self.encoder(seq, src_key_padding_mask=~(valid | empty))
        w = valid.unsqueeze(-1).to(out.dtype)
        if self.readout == "mean":
            return (out * w).sum(1) / w.sum(1).clamp_min(1.0)
        slots, start = [], 0
        for _i, m in enumerate(self.modalities):
            slots.append(out[:, start] * w[:, start])  # the modality's summary token; zero when absent
            start += 1 + (tokens[m][0].shape[1] if self.wants_tokens else 0)
        return torch.cat(slots, dim=-1)

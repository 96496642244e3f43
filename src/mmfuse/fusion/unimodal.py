"""The unimodal baseline as a fusion choice, so one sweep covers baselines and fusions."""
from __future__ import annotations

import torch

from mmfuse.fusion.base import Fusion


class SingleModality(Fusion):
    """z = h_modality: the embedding of one modality, passed through.

    Used by `UnimodalModule`; when that modality is missing the embedding is
    zeroed, so the prediction falls back to the head's bias (chance level).
    """

    min_modalities = 1
    max_modalities = 1

    def __init__(self, in_dims: dict[str, int], modality: str):
        super().__init__(in_dims)
        if modality not in in_dims:
            raise ValueError(
                f"fusion=unimodal: fusion.modality={modality!r} is not among the model's modalities {list(in_dims)}"
            )
        self.modality = modality
        self.out_dim = in_dims[modality]

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        return feats[self.modality] * present[:, :1].to(feats[self.modality].dtype)

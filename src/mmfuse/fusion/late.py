"""Late fusion: an ensemble of per-modality classifiers."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmfuse.fusion.base import Fusion

COMBINE_RULES = ("mean", "weighted", "learned", "stacking")


class LateFusion(Fusion):
    """One head per modality, combined into class log-probabilities.

    s_m = W_m h_m + b_m (B, K); p_m = softmax(s_m). With weights w over the
    present modalities renormalised to sum to 1:
    - mean:     log sum_m (1/M') p_m
    - weighted: log sum_m w_m p_m, w fixed by `weights`
    - learned:  log sum_m softmax(a)_m p_m, a learned
    - stacking: a linear meta-classifier on [log p_1; ...; log p_M]
                (missing modalities' entries zeroed)
    The output is (B, K) log-probabilities (or meta logits), which the
    cross-entropy loss treats as logits. Because every rule is additive
    across modalities, late fusion cannot model synergy (e.g. XOR).
    """

    min_modalities = 1
    produces_logits = True

    def __init__(
        self,
        in_dims: dict[str, int],
        num_classes: int,
        combine: str = "mean",
        weights: dict[str, float] | None = None,
        hidden: int = 0,
    ):
        super().__init__(in_dims)
        if combine not in COMBINE_RULES:
            raise ValueError(f"fusion.combine={combine!r}; expected one of {list(COMBINE_RULES)}")
        self.combine = combine
        self.heads = nn.ModuleDict({
            m: (nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)) if hidden
                else nn.Linear(d, num_classes))
            for m, d in in_dims.items()
        })
        if combine == "weighted":
            if not weights or set(weights) != set(in_dims) or any(w < 0 for w in weights.values()):
                raise ValueError(
                    f"fusion.combine=weighted needs fusion.weights with a non-negative weight for each of "
                    f"{list(in_dims)}, got {weights}"
                )
            self.register_buffer("fixed_logw", torch.tensor([math.log(max(weights[m], 1e-12)) for m in in_dims]))
        if combine == "learned":
            self.weight_logits = nn.Parameter(torch.zeros(len(in_dims)))
        if combine == "stacking":
            self.meta = nn.Linear(len(in_dims) * num_classes, num_classes)
        self.out_dim = num_classes

    def modality_log_probs(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, M, K) log-probabilities of each modality's own head."""
        return torch.stack([self.heads[m](feats[m]).log_softmax(-1) for m in self.modalities], dim=1)

    def forward(self, feats: dict[str, torch.Tensor], present: torch.Tensor, tokens=None) -> torch.Tensor:
        logp = self.modality_log_probs(feats)
        if self.combine == "stacking":
            return self.meta((logp * present.unsqueeze(-1).to(logp.dtype)).flatten(1))
        if self.combine == "weighted":
            logw = self.fixed_logw.expand(present.shape)
        elif self.combine == "learned":
            logw = self.weight_logits.log_softmax(0).expand(present.shape)
        else:
            logw = torch.zeros(present.shape, dtype=logp.dtype, device=logp.device)
        none = ~present.any(1, keepdim=True)
        # renormalise over present modalities; a sample with none observed gets the uniform distribution
        logw = logw.masked_fill(~present & ~none, float("-inf")).log_softmax(-1)
        combined = torch.logsumexp(logw.unsqueeze(-1) + logp, dim=1)
        return torch.where(none, torch.full_like(combined, -math.log(combined.shape[-1])), combined)

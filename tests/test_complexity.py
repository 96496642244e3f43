"""Complexity figures: FLOPs that match the arithmetic, positive latency, memory, epoch time."""
from __future__ import annotations

import torch
from torch import nn

from mmfuse.evaluation.complexity import flops_per_sample, latency_per_sample_ms, peak_memory_mb


class LinearHead(nn.Module):
    def __init__(self, a: int, b: int):
        super().__init__()
        self.head = nn.Linear(a, b)

    def forward(self, batch):
        return self.head(batch["tabular"])


def test_flops_of_a_linear_head_are_2ab_per_sample():
    batch = {"tabular": torch.randn(32, 48), "label": torch.zeros(32, dtype=torch.long)}
    assert flops_per_sample(LinearHead(48, 10), batch) == 2 * 48 * 10


def test_latency_and_memory_are_measured():
    batch = {"tabular": torch.randn(16, 8), "label": torch.zeros(16, dtype=torch.long)}
    assert latency_per_sample_ms(LinearHead(8, 2), batch, repeats=3) > 0
    assert peak_memory_mb()["peak_rss_mb"] > 10


def test_parameter_counts_per_component_add_up_to_the_total(cfg_factory):
    from hydra.utils import instantiate

    from mmfuse.models.build import build_model

    cfg = cfg_factory("fusion=gated")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    counts = build_model(cfg, dm).parameter_counts()
    parts = [v for k, v in counts.items() if k.startswith("encoder/") or k in ("fusion", "head")]
    assert len(parts) == len(dm.modalities) + 2 and all(v > 0 for v in parts)
    assert sum(parts) == counts["total"] == counts["trainable"]

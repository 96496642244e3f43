"""Learning-rate schedules built from torch's own schedulers."""
from __future__ import annotations

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05,
                  min_lr_ratio: float = 0.01) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over `warmup_fraction` of the steps, then cosine decay to `min_lr_ratio` x lr."""
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"model.scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}")
    total_steps = max(int(total_steps), 1)
    warmup = max(int(round(warmup_fraction * total_steps)), 1)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    first = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(total_steps - warmup, 1), eta_min=min(base_lrs) * min_lr_ratio
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [first, cosine], milestones=[warmup])

"""The cost of a model: FLOPs per sample, inference latency, peak memory, time per training epoch."""
from __future__ import annotations

import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def flops_per_sample(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Forward-pass FLOPs (a multiply-add counts 2) divided by the batch size, from torch's flop counter."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(batch)
    model.train(was_training)
    return counter.get_total_flops() / len(batch["label"])


@torch.no_grad()
def latency_per_sample_ms(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5, warmup: int = 2
) -> float:
    """Median wall time of a forward pass over `batch`, per sample, in milliseconds."""
    was_training = model.training
    model.eval()
    times = []
    for i in range(warmup + repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        model(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    model.train(was_training)
    return 1000 * statistics.median(times) / len(batch["label"])


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process (and peak CUDA memory on a GPU), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"peak_rss_mb": rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def complexity(
    model, batch: dict[str, torch.Tensor], epoch_seconds: list[float], epoch_periods: list[float] | None = None
) -> dict[str, float]:
    """The complexity record of a trained model, measured on one evaluation batch."""
    batch = {k: v.to(model.device) for k, v in batch.items()}
    out = {
        "flops_per_sample": flops_per_sample(model, batch),
        "latency_ms_per_sample": latency_per_sample_ms(model, batch),
        "latency_batch_size": len(batch["label"]),
        **peak_memory_mb(),
    }
    if epoch_seconds:
        out["train_seconds_per_epoch"] = statistics.mean(epoch_seconds)
    if epoch_periods:
        # each epoch, validation and checkpoints included
        out["epoch_wall_seconds"] = [round(p, 4) for p in epoch_periods]
    return out

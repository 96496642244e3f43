"""Complexity figures: FLOPs that match the arithmetic, positive latency, memory, epoch time."""
from __future__ import annotations

import math
import subprocess
import sys

import torch
from torch import nn

from mmfuse.evaluation.complexity import flops_per_sample, latency_per_sample_ms


class LinearHead(nn.Module):
    def __init__(self, a: int, b: int):
        super().__init__()
        self.head = nn.Linear(a, b)

    def forward(self, batch):
        return self.head(batch["tabular"])


def test_flops_of_a_linear_head_are_2ab_per_sample():
    batch = {"tabular": torch.randn(32, 48), "label": torch.zeros(32, dtype=torch.long)}
    assert flops_per_sample(LinearHead(48, 10), batch) == 2 * 48 * 10


def formula_flops(model: nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Forward FLOPs per sample from the layer formulas, for models whose arithmetic is all in linear and
    convolution layers: 2 * in * out per output vector of a Linear, 2 * (in / groups) * kernel area per output
    element of a Conv (a multiply-add counts 2; bias, normalisation and activations are not counted)."""
    total = []

    def linear(module, inputs, output):
        total.append(2 * module.in_features * output.numel())

    def conv(module, inputs, output):
        total.append(2 * module.in_channels // module.groups * math.prod(module.kernel_size) * output.numel())

    hooks = [m.register_forward_hook(linear if isinstance(m, nn.Linear) else conv)
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(batch)
    model.train(was_training)
    for h in hooks:
        h.remove()
    assert total, "no linear or convolution layer ran"
    return sum(total) / len(batch["label"])


def test_latency_is_measured():
    batch = {"tabular": torch.randn(16, 8), "label": torch.zeros(16, dtype=torch.long)}
    assert latency_per_sample_ms(LinearHead(8, 2), batch, repeats=3) > 0  # a time: only its sign is known


# Measured in a grandchild: a process's peak RSS counts the memory of the image it was exec'd from (its parent's,
# after fork or vfork), so in a child of pytest it would start at pytest's size; the small child in between keeps
# the grandchild's start clean. The grandchild touches 256 MiB: the peak must grow by that much, and agree with the
# kernel's own figure (VmHWM in /proc/self/status).
GRANDCHILD = """
from mmfuse.evaluation.complexity import peak_memory_mb
def hwm():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
before = peak_memory_mb()["peak_rss_mb"]
block = bytearray(b"x") * (256 * 2**20)
after = peak_memory_mb()["peak_rss_mb"]
print(before, after, hwm())
"""


def test_peak_memory_grows_by_what_was_allocated_and_matches_the_kernel():
    child = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {GRANDCHILD!r}]))"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, hwm = map(float, done.stdout.split())
    assert 255 <= after - before <= 264  # the 256 MiB block (and the few pages around it)
    assert abs(after - hwm) <= 1


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

"""Does the data pipeline keep up? Batches delivered per second vs batches the model consumes per second.

Side by side in one process, same thread count: (a) iterate the training
DataLoader alone, (b) run forward + backward + optimizer step on batches
already in memory. Prints the ratio (delivery rate / consumption rate);
the target is >= 10x on the synthetic and AV-MNIST data.

    python benchmarks/bench_loader.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hydra.utils import instantiate  # noqa: E402

from conftest import SHARED_DATA, compose_config  # noqa: E402
from mmfuse.models.build import build_model  # noqa: E402


def rate(fn, n_batches: int, repeats: int = 3) -> float:
    """Batches per second, best of `repeats` (the machine is shared and noisy)."""
    fn(2)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(n_batches)
        best = min(best, time.perf_counter() - t)
    return n_batches / best


def measure(name: str, overrides: list[str], n_batches: int = 30) -> float:
    cfg = compose_config(["logger=none", *overrides], ROOT / "outputs" / "bench_tmp", tiny=False)
    dm = instantiate(cfg.data)
    dm.setup()
    model = build_model(cfg, dm)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [b for _, b in zip(range(n_batches), dm.train_dataloader())]

    def deliver(n):
        loader = iter(dm.train_dataloader())
        for _ in range(n):
            next(loader)

    def consume(n):
        model.train()
        for i in range(n):
            b = batches[i % len(batches)]
            loss = torch.nn.functional.cross_entropy(model(b), b["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    delivered, consumed = rate(deliver, n_batches), rate(consume, n_batches)
    ratio = delivered / consumed
    print(f"{name:34s} loader {delivered:9.1f} batches/s | model {consumed:7.1f} batches/s | ratio {ratio:7.1f}x "
          f"{'OK' if ratio >= 10 else 'BELOW TARGET'} (target >= 10x)")
    return ratio


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch size 128")
    ratios = [
        measure("synthetic (4 modalities, concat)", ["fusion=concat"]),
        measure("synthetic (image+tabular, late)", ["fusion=late", "data.modalities=[image,tabular]"]),
    ]
    if (SHARED_DATA / "mnist").is_dir():
        ratios.append(
            measure("avmnist_real (concat)", ["data=avmnist_real", f"paths.data_dir={SHARED_DATA}", "fusion=concat"])
        )
    sys.exit(0 if min(ratios) >= 10 else 1)

"""Framework overhead: an epoch through `mmfuse train` vs a plain PyTorch loop, side by side in one process.

Both train the same model (built by mmfuse.models.build from the same config
and seed) on the same in-memory batches (the data module's loaders), with the
same batch size, thread count, optimizer (AdamW, the warmup-cosine schedule,
gradient clipping at 1.0) and a validation pass computing accuracy each epoch.
`mmfuse train` adds everything a run has: Lightning, torchmetrics (per-step
and per-epoch metrics), W&B (offline) and CSV logging, best+last
checkpoints every epoch, the rich progress bar and the run record.

An epoch's time is start to next start (training, validation, checkpoints,
logging); the figure is the median over epochs 2..E (epoch 1 warms up), and
each side runs `--rounds` times, alternating, keeping its best round.
Prints the ratio mmfuse / plain per data set; the target is <= 1.05.

    python benchmarks/bench_overhead.py [--epochs 6] [--rounds 2] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SHARED_DATA, compose_config  # noqa: E402

CASES = {
    "synthetic": ["data=synthetic"],
    "avmnist_real": ["data=avmnist_real", f"paths.data_dir={SHARED_DATA}", "data.sizes=[4000,1000,1000]"],
}


def config(case: str, epochs: int, threads: int, folder: Path, logging: bool = True):
    extra = [] if logging else ["logger=none", "callbacks=none"]
    return compose_config([*CASES[case], f"trainer.max_epochs={epochs}", f"threads={threads}", "seed=0",
                           "evaluation.robustness=false", "fusion=concat", "test=false", *extra], folder, tiny=False)


def plain_epochs(case: str, epochs: int, threads: int, folder: Path) -> list[float]:
    """The hand-written loop: forward, loss, backward, clip, step, schedule; a validation pass with accuracy."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from mmfuse.models.build import build_model
    from mmfuse.models.metrics import loss_fn
    from mmfuse.models.schedules import warmup_cosine

    cfg = config(case, epochs, threads, folder, logging=False)
    torch.set_num_threads(threads)
    pl.seed_everything(0, verbose=False)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = build_model(cfg, dm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.model.optimizer.lr, weight_decay=cfg.model.optimizer.weight_decay)
    train_loader, val_loader = dm.train_dataloader(), dm.val_dataloader()
    sched = warmup_cosine(opt, epochs * len(train_loader), cfg.model.scheduler.warmup_fraction, cfg.model.scheduler.min_lr_ratio)
    starts = []
    for _ in range(epochs):
        starts.append(time.perf_counter())
        model.train()
        for batch in train_loader:
            loss = loss_fn(model.task, model(batch), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in val_loader:
                correct += int((model(batch).argmax(1) == batch["label"]).sum())
                total += len(batch["label"])
        assert total > 0 and 0 <= correct <= total
    starts.append(time.perf_counter())
    return [b - a for a, b in zip(starts, starts[1:])]


def mmfuse_epochs(case: str, epochs: int, threads: int, folder: Path) -> list[float]:
    import contextlib
    import io

    from mmfuse.train import train

    with contextlib.redirect_stdout(io.StringIO()):  # the progress bar runs (it is part of the cost) but is not shown
        record = train(config(case, epochs, threads, folder))
    assert record["status"] == "completed", record.get("error")
    return record["complexity"]["epoch_wall_seconds"]


def measure(case: str, epochs: int, rounds: int, threads: int) -> dict:
    best = {"plain": float("inf"), "mmfuse": float("inf")}
    for r in range(rounds):
        for name, fn in (("plain", plain_epochs), ("mmfuse", mmfuse_epochs)):
            folder = Path(tempfile.mkdtemp(prefix=f"bench_overhead_{case}_{name}_"))
            try:
                seconds = fn(case, epochs, threads, folder / "run")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            best[name] = min(best[name], statistics.median(seconds[1:]))
    return {"case": case, "plain_s": best["plain"], "mmfuse_s": best["mmfuse"], "ratio": best["mmfuse"] / best["plain"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    import logging
    import os
    import warnings

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("mmfuse").setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    results = []
    print(f"epoch time, median of epochs 2..{args.epochs}, best of {args.rounds} rounds, {args.threads} thread(s)")
    print(f"{'data set':<14} {'plain loop s':>13} {'mmfuse train s':>15} {'ratio':>7}  target <= 1.05")
    for case in args.cases:
        res = measure(case, args.epochs, args.rounds, args.threads)
        results.append(res)
        verdict = "ok" if res["ratio"] <= 1.05 else "OVER"
        print(f"{case:<14} {res['plain_s']:>13.3f} {res['mmfuse_s']:>15.3f} {res['ratio']:>7.3f}  {verdict}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

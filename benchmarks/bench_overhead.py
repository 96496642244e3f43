"""Framework overhead: an epoch through `mmfuse train` vs a plain PyTorch loop, side by side in one process.

Both train the same model (built by mmfuse.models.build from the same config)
on the same in-memory batches (the data module's loaders), with the same
batch size, thread count, optimizer (AdamW, the warmup-cosine schedule,
gradient clipping at 1.0) and a validation pass each epoch. `mmfuse train`
adds everything a run has: Lightning, torchmetrics (per-step and per-epoch
metrics), W&B (offline) and CSV logging, best+last checkpoints every epoch,
the rich progress bar and the run record.

This machine's speed drifts by several per cent from one minute to the next,
more than the 5 % being measured, so the two sides alternate epoch by epoch:
a benchmark-only callback runs one epoch of the plain loop (its own copy of
the model and optimizer) just before each of Lightning's epochs. A Lightning
epoch is timed from the end of that plain epoch to the start of the next one
(training, validation, checkpoints, logging, progress bar: everything the
run does in between). Each pair gives a ratio; the figure is the median of
the ratios of epochs 2..E (epoch 1 warms up) over `--rounds` runs, with the
lowest and highest ratio next to it, and the ratio of the training steps
alone (first batch to last, no validation or epoch end). The progress bar renders as in a
terminal (TTY_COMPATIBLE=1, TTY_INTERACTIVE=1), into /dev/null.
Target: ratio <= 1.05 on each data set.

    python benchmarks/bench_overhead.py [--epochs 6] [--rounds 2] [--threads 1] [--json out.json] [--overrides k=v ...]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SHARED_DATA, compose_config  # noqa: E402

CASES = {
    "synthetic": ["data=synthetic"],
    "avmnist_real": ["data=avmnist_real", f"paths.data_dir={SHARED_DATA}", "data.sizes=[4000,1000,1000]"],
}
_PAIRING: dict = {}  # the pairing callback of the run in progress (the callback is built by Hydra's instantiate)


def config(case: str, epochs: int, threads: int, folder: Path, overrides: list[str] = ()):
    return compose_config([*CASES[case], f"trainer.max_epochs={epochs}", f"threads={threads}", "seed=0",
                           "evaluation.robustness=false", "fusion=concat", "test=false", *overrides], folder, tiny=False)


class PlainLoop:
    """The hand-written loop: forward, loss, backward, clip, step, schedule; a validation pass with accuracy."""

    def __init__(self, cfg, datamodule, epochs: int):
        from mmfuse.models.build import build_model
        from mmfuse.models.schedules import warmup_cosine

        self.model = build_model(cfg, datamodule)
        self.train_loader, self.val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
        opt = cfg.model.optimizer
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
        self.sched = warmup_cosine(self.opt, epochs * len(self.train_loader), cfg.model.scheduler.warmup_fraction,
                                   cfg.model.scheduler.min_lr_ratio)

    def epoch(self) -> float:
        """One epoch; returns the seconds its training steps took (the rest is validation)."""
        from mmfuse.models.metrics import loss_fn

        model = self.model
        model.train()
        start = time.perf_counter()
        for batch in self.train_loader:
            loss = loss_fn(model.task, model(batch), batch["label"])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            self.opt.step()
            self.sched.step()
        steps = time.perf_counter() - start
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in self.val_loader:
                correct += int((model(batch).argmax(1) == batch["label"]).sum())
                total += len(batch["label"])
        assert total > 0 and 0 <= correct <= total
        return steps


class PairEpochs(pl.Callback):
    """Runs one plain-loop epoch before each Lightning epoch and times both (benchmark only)."""

    def __init__(self):
        self.plain: list[float] = []
        self.lightning: list[float] = []
        self.plain_steps: list[float] = []  # the training steps alone (first to last batch)
        self.lightning_steps: list[float] = []
        self._start: float | None = None
        self._loop: PlainLoop | None = None
        _PAIRING["callback"] = self

    def on_train_start(self, trainer, pl_module) -> None:
        cfg = _PAIRING["cfg"]
        self._loop = PlainLoop(cfg, trainer.datamodule, cfg.trainer.max_epochs)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self.lightning.append(now - self._start)
        self.plain_steps.append(self._loop.epoch())
        self._start = time.perf_counter()
        self.plain.append(self._start - now)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._steps_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            self.lightning_steps.append(time.perf_counter() - self._steps_start)

    def on_train_end(self, trainer, pl_module) -> None:
        self.lightning.append(time.perf_counter() - self._start)


@contextlib.contextmanager
def output_to_devnull():
    """Everything written to file descriptors 1 and 2 (the progress bar, library warnings) goes to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


def paired_epochs(case: str, epochs: int, threads: int, overrides: list[str] = ()) -> tuple[list[float], ...]:
    """One `mmfuse train` run with a plain epoch before each of its epochs: seconds per epoch (plain, mmfuse),
    and of their training steps alone (plain, mmfuse)."""
    from mmfuse.train import train

    folder = Path(tempfile.mkdtemp(prefix=f"bench_overhead_{case}_"))
    try:
        cfg = config(case, epochs, threads, folder / "run", overrides)
        with open_dict(cfg):
            cfg.callbacks.pair_epochs = {"_target_": f"{__name__}.PairEpochs"}
        _PAIRING.clear()
        _PAIRING["cfg"] = cfg
        with output_to_devnull():  # the progress bar runs and renders (it is part of the cost) but is not shown
            record = train(cfg)
        assert record["status"] == "completed", record.get("error")
        pairing = _PAIRING["callback"]
        assert len(pairing.plain) == len(pairing.lightning) == epochs, (pairing.plain, pairing.lightning)
        return pairing.plain, pairing.lightning, pairing.plain_steps, pairing.lightning_steps
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(case: str, epochs: int, rounds: int, threads: int, overrides: list[str] = ()) -> dict:
    plain, mmfuse, plain_steps, mmfuse_steps = [], [], [], []
    for _ in range(rounds):
        p, m, ps, ms = paired_epochs(case, epochs, threads, overrides)
        plain += p[1:]
        mmfuse += m[1:]
        plain_steps += ps[1:]
        mmfuse_steps += ms[1:]
    ratios = [m / p for p, m in zip(plain, mmfuse)]
    return {"case": case, "plain_s": statistics.median(plain), "mmfuse_s": statistics.median(mmfuse),
            "ratio": statistics.median(ratios), "ratios": ratios, "plain": plain, "mmfuse": mmfuse,
            "steps_ratio": statistics.median(m / p for p, m in zip(plain_steps, mmfuse_steps)),
            "plain_steps": plain_steps, "mmfuse_steps": mmfuse_steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="config overrides for the mmfuse side, to see what a part costs (e.g. logger=csv)")
    args = parser.parse_args()
    import logging
    import warnings

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.update(TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")  # rich renders the bar live, as in a terminal
    logging.getLogger("mmfuse").setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    results = []
    print(f"epoch time in seconds, medians over epochs 2..{args.epochs} of {args.rounds} runs; each mmfuse epoch "
          f"paired with a plain-loop epoch run just before it; {args.threads} thread(s)")
    print(f"{'data set':<14} {'plain loop':>10} {'mmfuse':>8} {'ratio':>7} {'ratio range':>13} {'steps only':>10}  "
          "target <= 1.05")
    for case in args.cases:
        res = measure(case, args.epochs, args.rounds, args.threads, args.overrides)
        results.append(res)
        verdict = "ok" if res["ratio"] <= 1.05 else "OVER"
        spread = f"{min(res['ratios']):.3f}-{max(res['ratios']):.3f}"
        print(f"{case:<14} {res['plain_s']:>10.3f} {res['mmfuse_s']:>8.3f} {res['ratio']:>7.3f} {spread:>13} "
              f"{res['steps_ratio']:>10.3f}  {verdict}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

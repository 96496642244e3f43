"""Framework overhead: an epoch through `mmfuse train` vs a plain PyTorch loop, interleaved batch by batch in one
process.

Both train the same model (built by mmfuse.models.build from the same config)
on the same in-memory data (each side iterates its own copy of the data
module's loaders), with the same batch size, thread count, optimizer (AdamW,
the warmup-cosine schedule, gradient clipping at 1.0) and a validation pass
each epoch. `mmfuse train` adds everything a run has: Lightning, torchmetrics
(per-step and per-epoch metrics), W&B (offline) and CSV logging, best+last
checkpoints every epoch, the rich progress bar and the run record.

This machine's speed drifts by 5-15 % over seconds, more than the 5 % being
measured, so the two sides alternate batch by batch (about every 0.1 s): a
benchmark-only callback runs one step of the plain loop (its own model copy,
optimizer and loader iterator) next to each of Lightning's training steps,
and one plain validation batch next to each of Lightning's. Which side runs
first changes the times by a few per cent (run after the other side, a
backward pass took 2 ms longer), so the plain piece runs before Lightning's
even batches and after its odd ones (P M M P P M M P ...). Everything
between two plain pieces is mmfuse's: its step, hooks, logging, progress bar,
and at the end of an epoch its validation metrics, checkpoints and records.
An epoch's ratio is mmfuse's time over the plain loop's; the figure is the
median over epochs 2..E (epoch 1 warms up) of `--rounds` runs, with the lowest
and highest ratio next to it, and the ratio of the training steps alone
(mmfuse's time per step between the epoch's first and last plain training
step against the plain loop's mean step, epoch ends left
out). The progress bar renders as in a terminal (TTY_COMPATIBLE=1,
TTY_INTERACTIVE=1), into /dev/null, drawing in the training thread. It
updates at most refresh_rate times a second of the run; its clock leaves out
the plain pieces, which would otherwise double its updates per epoch. Target:
ratio <= 1.05 on each data set.

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
from collections import defaultdict
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
_PAIRING: dict = {}  # the interleaving callback of the run in progress (the callback is built by Hydra's instantiate)


def config(case: str, epochs: int, threads: int, folder: Path, overrides: list[str] = ()):
    return compose_config(
        [
            *CASES[case],
            f"trainer.max_epochs={epochs}",
            f"threads={threads}",
            "seed=0",
            "evaluation.robustness=false",
            "fusion=concat",
            "test=false",
            *overrides,
        ],
        folder,
        tiny=False,
    )


class PlainLoop:
    """The hand-written loop, a batch at a time: forward, loss, backward, clip, step, schedule; validation with
    accuracy."""

    def __init__(self, cfg, datamodule, epochs: int):
        from mmfuse.models.build import build_model
        from mmfuse.models.metrics import loss_fn
        from mmfuse.models.schedules import warmup_cosine

        self.model = build_model(cfg, datamodule)
        self.loss_fn = loss_fn
        self.train_loader, self.val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
        opt = cfg.model.optimizer
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
        self.sched = warmup_cosine(
            self.opt,
            epochs * len(self.train_loader),
            cfg.model.scheduler.warmup_fraction,
            cfg.model.scheduler.min_lr_ratio,
        )
        self.correct = self.total = 0

    def train_step(self, first: bool) -> None:
        model = self.model
        if first:  # a new epoch: a fresh pass over the training data
            model.train()
            self._batches = iter(self.train_loader)
        batch = next(self._batches)
        loss = self.loss_fn(model.task, model(batch), batch["label"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()

    def val_batch(self, first: bool) -> None:
        if first:
            self.model.eval()
            self._batches = iter(self.val_loader)
            self.correct = self.total = 0
        batch = next(self._batches)
        with torch.inference_mode():  # what Lightning's validation uses (Trainer(inference_mode=True))
            self.correct += int((self.model(batch).argmax(1) == batch["label"]).sum())
        self.total += len(batch["label"])


class InterleavePlain(pl.Callback):
    """Runs a plain-loop piece next to each of Lightning's training steps and validation batches, before the even
    ones and after the odd ones; times both sides (benchmark only)."""

    def __init__(self):
        self.plain: dict[int, float] = defaultdict(float)  # epoch -> seconds in plain-loop pieces
        self.mmfuse: dict[int, float] = defaultdict(float)  # epoch -> seconds of everything else
        self.plain_steps: dict[int, list[float]] = defaultdict(list)  # a plain training step, 2nd to last
        # (seconds between two plain training steps, mmfuse training steps that ended in them)
        self.mmfuse_steps: dict[int, list[tuple[float, int]]] = defaultdict(list)
        self._mark: tuple[float, int, bool, int] | None = None  # the last plain piece: (end, epoch, training?, steps)
        self._steps_ended = 0  # mmfuse training steps ended so far
        self._loop: PlainLoop | None = None
        _PAIRING["callback"] = self

    def on_train_start(self, trainer, pl_module) -> None:
        cfg = _PAIRING["cfg"]
        self._loop = PlainLoop(cfg, trainer.datamodule, cfg.trainer.max_epochs)
        bar = trainer.progress_bar_callback
        if hasattr(bar, "clock"):
            # the bar updates at most refresh_rate times a second of the run; the plain pieces are not the run's
            # seconds (they double the wall time), so its clock leaves them out, as if the run were alone
            bar.clock = lambda: time.monotonic() - sum(self.plain.values())

    def _piece(self, trainer, training: bool, first: bool) -> None:
        start = time.perf_counter()
        epoch = trainer.current_epoch
        self._charge(start, epoch, training and not first)
        (self._loop.train_step if training else self._loop.val_batch)(first)
        end = time.perf_counter()
        self.plain[epoch] += end - start
        if training and not first:
            self.plain_steps[epoch].append(end - start)
        self._mark = (end, epoch, training, self._steps_ended)

    def _charge(self, now: float, epoch: int | None, step: bool) -> None:
        """Everything since the last plain piece was mmfuse's: charge it to that piece's epoch."""
        if self._mark is None:
            return
        since, mark_epoch, was_training, steps_then = self._mark
        self.mmfuse[mark_epoch] += now - since
        if step and was_training and mark_epoch == epoch:
            self.mmfuse_steps[epoch].append((now - since, self._steps_ended - steps_then))

    # Which side runs first matters by a few per cent (the allocator and caches favour one order), so the order
    # alternates: plain before mmfuse's even batches, after its odd ones (P M M P P M M P ...); each batch of
    # either side follows one of the other side's as often as one of its own.
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx % 2 == 0:
            self._piece(trainer, training=True, first=batch_idx == 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps_ended += 1
        if batch_idx % 2 == 1:
            self._piece(trainer, training=True, first=False)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and batch_idx % 2 == 0:
            self._piece(trainer, training=False, first=batch_idx == 0)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and batch_idx % 2 == 1:
            self._piece(trainer, training=False, first=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._charge(time.perf_counter(), None, False)


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


def interleaved_run(case: str, epochs: int, threads: int, overrides: list[str] = ()) -> InterleavePlain:
    """One `mmfuse train` run with a plain-loop piece before each of its batches; the callback holds the times."""
    from mmfuse.train import train

    folder = Path(tempfile.mkdtemp(prefix=f"bench_overhead_{case}_"))
    try:
        cfg = config(case, epochs, threads, folder / "run", overrides)
        with open_dict(cfg):
            cfg.callbacks.interleave_plain = {"_target_": f"{__name__}.InterleavePlain"}
        _PAIRING.clear()
        _PAIRING["cfg"] = cfg
        with output_to_devnull():  # the progress bar runs and renders (it is part of the cost) but is not shown
            record = train(cfg)
        assert record["status"] == "completed", record.get("error")
        timing = _PAIRING["callback"]
        assert sorted(timing.plain) == sorted(timing.mmfuse) == list(range(epochs)), (timing.plain, timing.mmfuse)
        # the plain loop saw every batch: the whole validation set in the last epoch, as many steps as Lightning
        assert timing._loop.total == len(timing._loop.val_loader.dataset), timing._loop.total
        assert timing._loop.sched.last_epoch == epochs * len(timing._loop.train_loader), timing._loop.sched.last_epoch
        return timing
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(case: str, epochs: int, rounds: int, threads: int, overrides: list[str] = ()) -> dict:
    plain, mmfuse, steps_ratios = [], [], []
    for _ in range(rounds):
        t = interleaved_run(case, epochs, threads, overrides)
        for epoch in range(1, epochs):  # epoch 1 (index 0) warms up
            plain.append(t.plain[epoch])
            mmfuse.append(t.mmfuse[epoch])
            gaps, steps = map(sum, zip(*t.mmfuse_steps[epoch]))
            steps_ratios.append((gaps / steps) / statistics.mean(t.plain_steps[epoch]))
    ratios = [m / p for p, m in zip(plain, mmfuse)]
    return {
        "case": case,
        "plain_s": statistics.median(plain),
        "mmfuse_s": statistics.median(mmfuse),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "plain": plain,
        "mmfuse": mmfuse,
        "steps_ratio": statistics.median(steps_ratios),
        "steps_ratios": steps_ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="config overrides for the mmfuse side, to see what a part costs (e.g. logger=csv)",
    )
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
    print(
        f"epoch time in seconds, medians over epochs 2..{args.epochs} of {args.rounds} runs; plain-loop and mmfuse "
        f"batches interleaved one by one, each side first in turn (P M M P ...); {args.threads} thread(s)"
    )
    print(
        f"{'data set':<14} {'plain loop':>10} {'mmfuse':>8} {'ratio':>7} {'ratio range':>13} {'steps only':>10}  "
        "target <= 1.05"
    )
    for case in args.cases:
        res = measure(case, args.epochs, args.rounds, args.threads, args.overrides)
        results.append(res)
        verdict = "ok" if res["ratio"] <= 1.05 else "OVER"
        spread = f"{min(res['ratios']):.3f}-{max(res['ratios']):.3f}"
        print(
            f"{case:<14} {res['plain_s']:>10.3f} {res['mmfuse_s']:>8.3f} {res['ratio']:>7.3f} {spread:>13} "
            f"{res['steps_ratio']:>10.3f}  {verdict}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

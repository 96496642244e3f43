"""mmfuse's `data=avmnist` defaults against MultiBench's classic LeNet pair, side by side on the same AV-MNIST files.

The files are written from real data (../shared/data: MNIST t10k digits, each
paired with a spoken FSDD recording of the same digit) by
mmfuse.data.avmnist_files, in MultiBench's layout, in two variants: `clean`,
and `hard` (images cut to their first 4 principal components, white noise at
-3 dB SNR on the audio, as the original AV-MNIST), because on clean digits
every strategy is near 100%.

Baseline, plain PyTorch, MultiBench's examples/multimedia/avmnist_simple_late_fusion.py:
LeNet(1, 6, 3) for images and LeNet(1, 6, 5) for spectrograms (a 5x5 conv,
then 3x3 convs doubling the channels 6, 12, 24, ..., each with BatchNorm,
ReLU and 2x2 max-pooling), their outputs concatenated (48 + 192 wide), an MLP
head (240 -> 100 -> 10); SGD lr 0.1, weight decay 1e-4, batch 40; the epoch
with the best validation accuracy is tested.

mmfuse: `mmfuse train data=avmnist fusion=<concat|lowrank|tensor>`, composed
as the CLI composes it and run by train(cfg) in this process, with nothing
changed but the data folder, its validation size (the files are smaller than
MultiBench's), seed, epochs and threads (robustness evaluation, logging and
the progress bar off: they do not change the model). Its defaults for this
data set: batch 40 (conf/data/avmnist.yaml), AdamW lr 3e-3 and a five-stage
audio CNN (conf/data_defaults/avmnist.yaml), whose first conv has stride 2 on
the 112 x 112 spectrograms (encoder `downsample: auto`). Its checkpoint with
the best validation accuracy is tested.

Ten epochs by default: at five, the hard variant's models were still learning fast (concat's test accuracy
0.71-0.87 over seeds 0-2, its validation accuracy rising by 2-9 points in the last epoch), a spread that no
1-point comparison survives; at ten it was 0.86-0.89.

Both sides read the same files, train on the same samples (the last
`--val-size` training samples validate) for the same epochs with the same
thread count. s/epoch is the time of an epoch's training batches (validation
left out on both sides), averaged over a run's epochs, the median over seeds
(one run slowed by other work on the machine moves a median less than a
mean); the two sides alternate run by run, so drift of the machine's speed
hits both alike. Each gap (concat - baseline, fusion - concat) is also printed paired
over the seeds with its 95% CI: with 3 seeds a 1-point verdict is close to the noise.
Targets: mmfuse concat accuracy >= baseline accuracy; mmfuse concat s/epoch
<= 0.7x the baseline's; lowrank and tensor within 1 point of concat, read as no more than 1 point
below it (the target guards the richer fusions against defaults that suit concat alone; one that beats
concat by more is not a failure, and its paired gap says how sure).

    python benchmarks/bench_avmnist.py [--epochs 10] [--seeds 3] [--first-seed 0] [--variants clean,hard]
        [--train-size 2000] [--val-size 500] [--test-size 2000] [--threads 2] [--fusions concat,lowrank,tensor]
        [--files DIR] [--overrides key=value ...]   (experiments only: the targets are about the defaults)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SHARED_DATA, compose_config  # noqa: E402
from mmfuse.data.avmnist_files import write_avmnist_files  # noqa: E402
from mmfuse.reporting.stats import ci95  # noqa: E402

FUSIONS = ("concat", "lowrank", "tensor")
SPEED_TARGET = 0.7  # mmfuse concat s/epoch <= this x the baseline's
FUSION_SPREAD = 0.01  # lowrank and tensor no more than this below concat's accuracy


# --- the baseline: MultiBench's LeNet pair, plain PyTorch -------------------------------------------
class LeNet(nn.Module):
    """MultiBench's unimodals.common_models.LeNet: conv5 then `extra` conv3 stages doubling the channels, each
    conv -> BatchNorm -> ReLU -> max-pool(2); the final map flattened (1 x 1 for these inputs)."""

    def __init__(self, channels: int, extra: int):
        super().__init__()
        widths = [channels * 2**i for i in range(extra + 1)]
        self.convs = nn.ModuleList(
            [nn.Conv2d(1, widths[0], 5, padding=2, bias=False)]
            + [nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(widths, widths[1:])]
        )
        self.norms = nn.ModuleList([nn.BatchNorm2d(w) for w in widths])
        for conv in self.convs:
            nn.init.kaiming_uniform_(conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.max_pool2d(F.relu(norm(conv(x))), 2)
        return x.flatten(1)


class LeNetPair(nn.Module):
    def __init__(self, channels: int = 6):
        super().__init__()
        self.image, self.audio = LeNet(channels, 3), LeNet(channels, 5)
        self.head = nn.Sequential(nn.Linear(channels * 40, 100), nn.ReLU(), nn.Linear(100, 10))

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), self.audio(audio)], 1))


def load_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) and spectrograms (N, 1, 112, 112) divided by 255, labels: as MultiBench's loader."""

    def scaled(path: Path, side: int) -> torch.Tensor:
        return torch.from_numpy(np.load(path).astype(np.float32) / 255).view(-1, 1, side, side)

    labels = torch.from_numpy(np.load(folder / f"{split}_labels.npy").astype(np.int64))
    image, audio = (
        scaled(folder / "image" / f"{split}_data.npy", 28),
        scaled(folder / "audio" / f"{split}_data.npy", 112),
    )
    return image, audio, labels


@torch.no_grad()
def accuracy(model: nn.Module, data: tuple[torch.Tensor, ...], batch: int = 512) -> float:
    model.eval()
    image, audio, label = data
    correct = sum(
        int((model(image[i : i + batch], audio[i : i + batch]).argmax(1) == label[i : i + batch]).sum())
        for i in range(0, len(label), batch)
    )
    return correct / len(label)


def run_baseline(folder: Path, val_size: int, epochs: int, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    train = load_split(folder, "train")
    cut = len(train[2]) - val_size
    fit, val = tuple(t[:cut] for t in train), tuple(t[cut:] for t in train)
    test = load_split(folder, "test")
    model = LeNetPair()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
    order = torch.Generator().manual_seed(seed)
    best, best_state, seconds = -1.0, None, []
    for _ in range(epochs):
        model.train()
        t = time.perf_counter()
        for idx in torch.randperm(cut, generator=order).split(40):
            loss = F.cross_entropy(model(fit[0][idx], fit[1][idx]), fit[2][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t)
        val_acc = accuracy(model, val)
        if val_acc > best:
            best, best_state = val_acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return {"acc": accuracy(model, test), "s_per_epoch": statistics.mean(seconds)}


# --- mmfuse: the defaults of `mmfuse train data=avmnist` ---------------------------------------------
def run_mmfuse(
    folder: Path, val_size: int, fusion: str, epochs: int, seed: int, threads: int, out: Path, overrides: list[str] = ()
) -> dict[str, float]:
    from mmfuse.train import train

    cfg = compose_config(
        [
            "data=avmnist",
            f"data.data_dir={folder}",
            f"data.val_size={val_size}",
            f"fusion={fusion}",
            f"seed={seed}",
            f"trainer.max_epochs={epochs}",
            f"threads={threads}",
            "logger=none",
            "evaluation.robustness=false",
            "trainer.enable_progress_bar=false",
            *overrides,
        ],
        Path(tempfile.mkdtemp(prefix=f"{folder.name}-{fusion}-s{seed}-", dir=out)) / "run",
        tiny=False,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the test table; the figures are printed below
        record = train(cfg)
    torch.set_num_threads(threads)  # as the baseline's, whatever the run left
    return {"acc": record["metrics"]["test/acc"], "s_per_epoch": record["complexity"]["train_seconds_per_epoch"]}


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "over"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each a run of every side")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="start the seeds here (more seeds for a spread, e.g. --first-seed 3 --seeds 3 for 3..5)",
    )
    parser.add_argument("--variants", default="clean,hard", help="comma-separated: clean, hard")
    parser.add_argument(
        "--train-size", type=int, default=2000, help="training samples (the validation ones come on top)"
    )
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="mmfuse fusion strategies to train (concat first)")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA, help="folder holding mnist/ and fsdd/")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="extra key=value overrides of the mmfuse runs, for experiments (the targets hold for the defaults)",
    )
    parser.add_argument(
        "--files",
        type=Path,
        default=None,
        help="keep the generated files in this folder (reused when present) instead of a temporary one",
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    fusions = [f for f in args.fusions.split(",") if f]
    if any(v not in ("clean", "hard") for v in variants) or not fusions or fusions[0] != "concat":
        parser.error("--variants takes clean and/or hard; --fusions starts with concat")

    torch.set_num_threads(args.threads)
    logging.getLogger("mmfuse").setLevel(logging.WARNING)
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(
        f"AV-MNIST layout from {args.data_dir}: {args.train_size} train + {args.val_size} val + "
        f"{args.test_size} test, {args.epochs} epochs, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
        f"{args.threads} threads",
        flush=True,
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for variant in variants:
            folder = (args.files or tmp) / f"{variant}-{args.train_size}-{args.val_size}-{args.test_size}"
            if not (folder / "test_labels.npy").is_file():
                write_avmnist_files(
                    folder,
                    args.data_dir / "mnist",
                    args.data_dir / "fsdd",
                    hard=variant == "hard",
                    n_train=args.train_size + args.val_size,
                    n_test=args.test_size,
                )
            results: dict[str, list[dict[str, float]]] = {"baseline": [], **{f: [] for f in fusions}}
            (tmp / "runs").mkdir(exist_ok=True)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                results["baseline"].append(run_baseline(folder, args.val_size, args.epochs, seed))
                for fusion in fusions:
                    results[fusion].append(
                        run_mmfuse(
                            folder, args.val_size, fusion, args.epochs, seed, args.threads, tmp / "runs", args.overrides
                        )
                    )
            acc = {k: [r["acc"] for r in v] for k, v in results.items()}
            speed = {k: statistics.median(r["s_per_epoch"] for r in v) for k, v in results.items()}
            print(f"\n[{variant}]  test accuracy (mean ± std over {args.seeds} seeds)   s/epoch (median)")
            for name in results:
                label = "baseline LeNet pair (SGD, batch 40)" if name == "baseline" else f"mmfuse fusion={name}"
                print(f"  {label:38s} {mean_std(acc[name]):>17s}   {speed[name]:7.2f}")
            mean = {k: statistics.mean(v) for k, v in acc.items()}
            ratio = speed["concat"] / speed["baseline"]
            checks = [
                (
                    mean["concat"] >= mean["baseline"],
                    f"concat accuracy {mean['concat']:.4f} >= baseline {mean['baseline']:.4f}",
                ),
                (ratio <= SPEED_TARGET, f"concat s/epoch = {ratio:.2f}x baseline (target <= {SPEED_TARGET}x)"),
            ]
            checks += [
                (
                    mean[f] - mean["concat"] >= -FUSION_SPREAD,
                    f"{f} accuracy {mean[f]:.4f} at most {FUSION_SPREAD:.2f} below concat {mean['concat']:.4f} "
                    f"({mean[f] - mean['concat']:+.4f})",
                )
                for f in fusions[1:]
            ]
            for good, line in checks:
                print(f"  {verdict(good):4s} {line}")
                ok &= good
            if args.seeds > 1:  # how sure: each gap paired over the seeds (both sides ran the same seeds)
                print("  gaps paired over seeds, mean [95% CI, t with n-1 df]:")
                for a, b in [("concat", "baseline"), *((f, "concat") for f in fusions[1:])]:
                    diffs = np.array(acc[a]) - np.array(acc[b])
                    low, high = ci95(diffs)
                    print(f"    {a} - {b:9s} {diffs.mean():+.4f} [{low:+.4f}, {high:+.4f}]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

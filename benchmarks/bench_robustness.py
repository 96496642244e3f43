"""Robustness evaluation: cached encodings against the straightforward full forward per score, side by side.

Trains the synthetic default run (`mmfuse train trainer.max_epochs=10`, robustness on, the default loggers) as a
user would, then, in this process, evaluates its best checkpoint at the default evaluation settings twice: with
mmfuse's evaluation (encoders once, fusion + head per missing-modality subset, one modality re-encoded per
corruption) and with the straightforward path it replaced (every score a full forward pass over the test set;
tests/robustness_reference.py), alternating which runs first. Both must give the same values (to 1e-6).
Targets: cached >= 5x faster than the reference; the run's own robustness time <= 25% of its fit time.

    python benchmarks/bench_robustness.py [--threads 2] [--rounds 1] [--epochs 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def train_default_run(folder: Path, epochs: int, threads: int) -> Path:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run([sys.executable, "-m", "mmfuse", "train", f"paths.output_dir={folder}", f"threads={threads}",
                           f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the default run failed: {done.stderr[-2000:]}")
    return next(folder.glob("runs/*/run.json")).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="timed evaluations of each path")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mmfuse.evaluation.robustness import evaluate_robustness
    from mmfuse.models.fusion_module import FusionModule
    from mmfuse.tracking.naming import register_resolvers
    from robustness_reference import flat, reference_robustness

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = train_default_run(Path(tmp), args.epochs, args.threads)
        record = json.loads((run_dir / "run.json").read_text())
        register_resolvers()
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        cfg.paths.run_dir = str(run_dir)
        datamodule = instantiate(cfg.data)
        datamodule.setup("test")
        model = FusionModule.load_from_checkpoint(record["best"]["checkpoint"], map_location="cpu", weights_only=True)
        ev = cfg.evaluation
        settings = dict(severities=list(ev.severities), modalities=ev.modalities, seed=ev.seed,
                        max_samples=ev.max_samples, batch_size=ev.batch_size)
        times = {"cached": [], "reference": []}
        results = {}
        for r in range(args.rounds):
            for name in (("cached", "reference") if r % 2 == 0 else ("reference", "cached")):
                fn = evaluate_robustness if name == "cached" else reference_robustness
                t = time.perf_counter()
                results[name] = fn(model, datamodule, **settings)
                times[name].append(time.perf_counter() - t)
    cached, reference = flat(results["cached"]), flat(results["reference"])
    worst = max(abs(cached[k] - reference[k]) for k in reference)
    same_keys = cached.keys() == reference.keys()
    recorded = flat(record["robustness"])
    worst_recorded = max(abs(recorded[k] - cached[k]) for k in cached)
    c, ref = statistics.median(times["cached"]), statistics.median(times["reference"])
    fit, rob = record["timing"]["fit_seconds"], record["timing"]["robustness_seconds"]
    print(f"synthetic defaults, {args.epochs} epochs, {results['cached']['samples']} test samples, "
          f"{len(settings['severities'])} severities; {args.threads} thread(s); median of {args.rounds} evaluation(s) "
          "each, alternating which path runs first")
    print(f"{'path':<44} {'seconds':>8}")
    print(f"{'straightforward (a full forward per score)':<44} {ref:>8.2f}")
    print(f"{'mmfuse (encoders once, fusion + head per score)':<44} {c:>8.2f}")
    print(f"speed-up {ref / c:.1f}x  target >= 5x: {'ok' if ref / c >= 5 else 'over'}")
    print(f"largest difference between the two paths: {worst:.1e} over {len(reference)} values "
          f"(same keys: {same_keys}); recorded by the run vs this evaluation: {worst_recorded:.1e}  "
          f"target <= 1e-6: {'ok' if same_keys and max(worst, worst_recorded) <= 1e-6 else 'over'}")
    print(f"in the run: robustness {rob:.2f} s / fit {fit:.2f} s = {rob / fit:.3f}  "
          f"target <= 0.25: {'ok' if rob / fit <= 0.25 else 'over'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

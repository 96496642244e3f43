"""`make bench`: run every benchmark, print its output, and write benchmarks/RESULTS.md with the machine they ran on.

Each benchmark is a separate process (python benchmarks/<name>.py); the file
keeps each one's command, exit status, time and output verbatim.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ["bench_overhead.py", "bench_startup.py", "bench_wholerun.py", "bench_robustness.py", "bench_parallel.py",
              "bench_loader.py", "bench_synthetic.py", "bench_avmnist.py"]


def machine() -> list[str]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    mem = next((int(line.split()[1]) // 1024 ** 2 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
            f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem} GiB; GPU: {gpu}",
            f"- python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}"]


def main() -> int:
    sections, failed = [], []
    for name in BENCHMARKS:
        print(f"== benchmarks/{name}", flush=True)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
        seconds = time.perf_counter() - t
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            failed.append(name)
            print(done.stderr[-3000:], file=sys.stderr)
        sections += [f"## {name}", "", f"`python benchmarks/{name}` — exit status {done.returncode}, {seconds:.0f} s", "",
                     "```", done.stdout.rstrip() or "(no output)", "```", ""]
    text = ["# Benchmark results", "", "Written by `make bench` (benchmarks/run_all.py); every figure below is the output of the",
            "command above it, run on this machine:", "", *machine(), "",
            "The GPU path (`trainer=gpu`, bf16) was not measured here: this machine has no GPU." if "none" in machine()[1]
            else "", "", *sections]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(text))
    print(f"written to benchmarks/RESULTS.md{'; failed: ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: run every benchmark, print its output, and write benchmarks/RESULTS.md with the machine they ran on.

Each benchmark is a separate process (python benchmarks/<name>.py); the file
keeps each one's command, exit status, time, date and output verbatim.
`python benchmarks/run_all.py bench_a.py bench_b.py` runs only those and
replaces their sections, keeping the others (each section says when it ran).
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
              "bench_loader.py", "bench_synthetic.py", "bench_avmnist.py", "bench_install_size.py"]


def machine() -> list[str]:
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    mem = (
        next(
            (
                int(line.split()[1]) // 1024**2
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            None,
        )
        if Path("/proc/meminfo").exists()
        else None
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem} GiB; GPU: {gpu}",
        f"- python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}",
    ]


def sections_of(text: str) -> dict[str, str]:
    """The `## <name>` sections of an existing RESULTS.md, by benchmark name, each stamped with when it ran."""
    date = next((line.split(":", 1)[1].strip()[:16] for line in text.splitlines() if line.startswith("- date:")), "?")
    out = {}
    for part in text.split("\n## ")[1:]:
        name, rest = part.split("\n", 1)
        status, _, rest = rest.lstrip("\n").partition("\n")
        if ", run " not in status:  # written by a full `make bench`: the file's date is the section's
            status = status.rstrip() + f", run {date}"
        out[name.strip()] = f"## {name.strip()}\n\n{status}\n{rest.rstrip()}\n"
    return out


def main() -> int:
    only = [a for a in sys.argv[1:] if a.endswith(".py")]
    unknown = [a for a in only if a not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; expected some of {BENCHMARKS}", file=sys.stderr)
        return 2
    results = ROOT / "benchmarks" / "RESULTS.md"
    kept = sections_of(results.read_text()) if only and results.is_file() else {}
    sections, failed = {}, []
    for name in only or BENCHMARKS:
        print(f"== benchmarks/{name}", flush=True)
        started = dt.datetime.now().isoformat(timespec="minutes")
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / name)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
        )
        seconds = time.perf_counter() - t
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            failed.append(name)
            print(done.stderr[-3000:], file=sys.stderr)
        sections[name] = "\n".join(
            [
                f"## {name}",
                "",
                f"`python benchmarks/{name}` — exit status {done.returncode}, {seconds:.0f} s, run {started}",
                "",
                "```",
                done.stdout.rstrip() or "(no output)",
                "```",
                "",
            ]
        )
    body = [sections.get(name) or kept.get(name) for name in BENCHMARKS]
    text = [
        "# Benchmark results",
        "",
        "Written by `make bench` (benchmarks/run_all.py); every figure below is the output of the",
        "command above it, run on this machine:",
        "",
        *machine(),
        "",
        "The GPU path (`trainer=gpu`, bf16) was not measured here: this machine has no GPU."
        if "none" in machine()[1]
        else "",
        "",
        *[b for b in body if b],
    ]
    results.write_text("\n".join(text))
    print(f"written to benchmarks/RESULTS.md{'; failed: ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

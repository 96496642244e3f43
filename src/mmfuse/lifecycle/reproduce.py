"""Re-running a finished run (or a sweep's jobs) from its config snapshot, and the verdict on its metrics
(`mmfuse reproduce`; the folders, verdict rules and exit statuses are in mmfuse/cli/reproduce.py)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from mmfuse.errors import UserError, report
from mmfuse.lifecycle.snapshot import (
    SNAPSHOT,
    clear_hydra,
    passing,
    read_run,
    run_config,
    stamp,
    writable,
)
from mmfuse.runs.folder import RECORD, RunFolder, read_record

PROG = "mmfuse reproduce"
ENVIRONMENT_KEYS = ("threads", "accelerator", "device", "precision")


def job_number(run_dir: Path) -> int | None:
    head = run_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def select_runs(path: Path, jobs: str | None) -> tuple[list[Path], bool]:
    """The run folders to reproduce and whether `path` is a sweep; every one checked before anything runs."""
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if (path / RECORD).is_file():
        if jobs is not None:
            raise UserError(f"--jobs applies to a sweep folder; {path} is a single run")
        read_run(path)
        return [path], False
    runs = sorted((p for p in path.iterdir() if (p / RECORD).is_file() and job_number(p) is not None), key=job_number)
    if not runs:
        raise UserError(f"{path} is neither a run folder nor a sweep folder (no {RECORD} in it or its job folders)")
    if jobs is not None:
        try:
            wanted = [int(j) for j in jobs.split(",") if j.strip()]
        except ValueError:
            raise UserError(f"--jobs {jobs!r}: give job numbers separated by commas, e.g. --jobs 0,3") from None
        by_number = {job_number(r): r for r in runs}
        missing = [j for j in wanted if j not in by_number]
        if missing:
            raise UserError(f"--jobs: sweep {path} has no job(s) {missing} (it has {sorted(by_number)})")
        runs = [by_number[j] for j in wanted]
        for r in runs:
            read_run(r)
        return runs, True
    done = passing(runs, read_run, lambda r, e: f"{PROG}: warning: skipping job {job_number(r)}: {e}")
    if not done:
        raise UserError(f"sweep {path}: no completed job to reproduce")
    return done, True


def outputs_root(run_dir: Path, record: dict[str, Any], sweep: bool) -> Path:
    parent = run_dir.parent.parent if sweep else run_dir.parent
    if parent.name in ("runs", "sweeps"):
        return parent.parent
    return Path(((record.get("config") or {}).get("paths") or {}).get("output_dir") or parent)


def environment_differences(original: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences that rule out an exact match, other differences worth knowing)."""
    strict, notes = [], []
    ov, nv = original.get("versions") or {}, new.get("versions") or {}
    for k in sorted(set(ov) | set(nv)):
        if ov.get(k) != nv.get(k):
            strict.append(f"{k} {ov.get(k)} -> {nv.get(k)}")
    oe, ne = original.get("environment") or {}, new.get("environment") or {}
    for k in ENVIRONMENT_KEYS:
        if oe.get(k) != ne.get(k):
            strict.append(f"{k} {oe.get(k)} -> {ne.get(k)}")
    og, ng = original.get("git") or {}, new.get("git") or {}
    if og.get("commit") != ng.get("commit"):
        notes.append(f"git commit {str(og.get('commit'))[:10]} -> {str(ng.get('commit'))[:10]}")
    if og.get("dirty") != ng.get("dirty"):
        notes.append(f"dirty tree {og.get('dirty')} -> {ng.get('dirty')}")
    elif og.get("dirty"):
        notes.append("dirty tree (uncommitted changes) at both runs")
    if original.get("data_fingerprint") != new.get("data_fingerprint"):
        notes.append(
            f"data fingerprint {str(original.get('data_fingerprint'))[:12]} -> {str(new.get('data_fingerprint'))[:12]}"
        )
    return strict, notes


def compare_metrics(original: dict[str, float], new: dict[str, float], tolerance: float | None) -> list[dict[str, Any]]:
    """One row per metric of either run; `tolerance` None means bit-for-bit."""
    rows = []
    for key in sorted(set(original) | set(new)):
        a, b = original.get(key), new.get(key)
        if a is None or b is None:
            rows.append({"metric": key, "original": a, "reproduced": b, "difference": None, "match": False})
            continue
        a, b = float(a), float(b)
        both_nan = math.isnan(a) and math.isnan(b)
        diff = 0.0 if both_nan else b - a
        ok = both_nan or (a == b if tolerance is None else abs(diff) <= tolerance)
        rows.append({"metric": key, "original": a, "reproduced": b, "difference": diff, "match": ok})
    return rows


def reproduce_one(run_dir: Path, new_dir: Path, train: Callable[[Any], dict]) -> dict[str, Any]:
    """Train the run's snapshot config into `new_dir`; returns the new record (status failed on error)."""
    record = read_record(run_dir)
    cfg = run_config(run_dir, record, new_dir)
    clear_hydra()
    RunFolder(new_dir).snapshot.parent.mkdir(parents=True)
    OmegaConf.save(cfg, new_dir / SNAPSHOT)  # a reproduction is itself reproducible
    try:
        train(cfg)
    except Exception as e:  # noqa: BLE001 - the new record says failed; the verdict reports it
        report(f"{PROG} [{new_dir}]", e)
    finally:
        if RunFolder(new_dir).exists():
            with RunFolder(new_dir).editing() as new:
                new["reproduced_from"] = {
                    "run_dir": str(run_dir.resolve()),
                    "run_name": record.get("run_name"),
                    "status": record.get("status"),
                }
        else:
            new = {"status": "failed", "metrics": {}}
    return new


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"


def user_code_changes(run_dir: Path, record: dict[str, Any]) -> list[str]:
    """The run's own code (plug-in `_target_`s), checked as it is today: what changed since the run recorded it.

    A `_target_` that no longer imports is a UserError naming it (nothing is reproduced).
    """
    # deferred: the plug-in checks import torch; `mmfuse reproduce --help` and a bad path stay instant
    from mmfuse.plugins import check_plugins, code_changes, plugin_sources

    cfg = run_config(run_dir, record)
    check_plugins(cfg)
    return [f"your code: {line}" for line in code_changes(record.get("plugins"), plugin_sources(cfg))]


def print_verdict(
    out, run_dir: Path, new_dir: Path, original: dict, new: dict, tolerance: float, code: list[str] | None = None
) -> bool:
    from rich.table import Table
    from rich.text import Text

    strict, notes = environment_differences(original, new)
    strict += code or []  # the run's own code changed: its numbers may differ for that reason alone
    exact = not strict
    rows = compare_metrics(original.get("metrics") or {}, new.get("metrics") or {}, None if exact else tolerance)
    ok = new.get("status") == "completed" and all(r["match"] for r in rows) and bool(rows)
    mode = "exact (environment matches)" if exact else f"within ±{tolerance:g} (environment differs)"
    table = Table(
        title=f"{original.get('run_name')}: {run_dir} -> {new_dir}",
        title_justify="left",
        caption=f"comparison: {mode}",
        caption_justify="left",
    )
    for col in ("metric", "original", "reproduced", "difference", ""):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for r in rows:
        table.add_row(
            Text(r["metric"]),
            fmt(r["original"]),
            fmt(r["reproduced"]),
            fmt(r["difference"]),
            Text("ok" if r["match"] else "DIFFERS", style="green" if r["match"] else "bold red"),
        )
    out.print(table)
    for line in strict + notes:
        out.print(Text(f"  environment difference: {line}", style="yellow"))
    if new.get("status") != "completed":
        out.print(
            Text(f"  reproduction {new.get('status')}: {(new.get('error') or {}).get('message', '')}", style="bold red")
        )
    bad = sum(not r["match"] for r in rows)
    verdict = (
        f"REPRODUCED ({mode}): {len(rows)} metrics match"
        if ok
        else f"NOT REPRODUCED ({mode}): {bad} of {len(rows)} metrics differ"
        if new.get("status") == "completed"
        else f"NOT REPRODUCED: the reproduction {new.get('status')}"
    )
    out.print(Text(verdict, style="bold green" if ok else "bold red"))
    return ok


def reproduce(
    path: Path,
    train: Callable[[Any], dict],
    jobs: str | None = None,
    tolerance: float = 1e-3,
    out_root: Path | None = None,
) -> int:
    from rich.text import Text

    # deferred: the terminal tables import scipy (1.5 s); --help stays instant
    from mmfuse.reporting.terminal import console

    path = Path(path)
    runs, sweep = select_runs(path, jobs)
    root = Path(out_root) if out_root else outputs_root(runs[0], read_record(runs[0]), sweep)
    if not writable(root):
        raise UserError(f"{root} is not writable; choose another outputs folder with --out")
    base = (
        root
        / "reproductions"
        / f"{stamp()}_{path.resolve().name if sweep else read_record(runs[0]).get('run_name', 'run')}"
    )
    out = console()
    changes = {run_dir: user_code_changes(run_dir, read_record(run_dir)) for run_dir in runs}
    for line in dict.fromkeys(line for lines in changes.values() for line in lines):
        out.print(
            Text(f"{PROG}: warning: {line}; the metrics are compared within --tolerance, not exactly", style="yellow")
        )
    ok = True
    for run_dir in runs:
        new_dir = base / run_dir.name if sweep else base
        new = reproduce_one(run_dir, new_dir, train)
        ok &= print_verdict(out, run_dir, new_dir, read_record(run_dir), new, tolerance, changes[run_dir])
    if sweep:
        out.print(f"{len(runs)} job(s) reproduced into {base}: " + ("all match" if ok else "some differ"))
    return 0 if ok else 1

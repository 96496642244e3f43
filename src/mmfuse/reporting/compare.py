"""`mmfuse compare`: group runs by what varies (not the seed), mean ± std over seeds."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mmfuse.reporting.runs import load_runs, varying_keys

DEFAULT_METRICS = ("test/acc", "test/f1", "val/acc_best")


def latest_sweep(output_dir: Path) -> Path | None:
    sweeps = sorted(p for p in (output_dir / "sweeps").glob("*") if p.is_dir())
    return sweeps[-1] if sweeps else None


def group_label(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    if not keys:
        return pd.Series(["all runs"] * len(df), index=df.index)
    short = {k: k.split(".", 1)[1] for k in keys}
    return df[keys].astype(str).apply(lambda r: ", ".join(f"{short[k]}={r[k]}" for k in keys), axis=1)


def summarise(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """mean, std (ddof=1) and number of completed runs per group, for each metric."""
    done = df[df["status"] == "completed"].copy()
    done["group"] = group_label(done, keys)
    rows = []
    for group, g in done.groupby("group", sort=True):
        row = {"group": group, "n": len(g), "seeds": ",".join(str(s) for s in sorted(g["seed"].dropna())),
               "params": g["params"].mean(), "fit_seconds": g["fit_seconds"].mean()}
        for m in metrics:
            if m in g:
                vals = g[m].dropna().astype(float)
                row[f"{m} mean"] = vals.mean()
                row[f"{m} std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def print_table(summary: pd.DataFrame, metrics: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("group", "n", *metrics, "params", "fit s"):
        table.add_column(col, justify="left" if col == "group" else "right")
    best = {m: summary[f"{m} mean"].max() for m in metrics if f"{m} mean" in summary}
    for _, r in summary.iterrows():
        cells = []
        for m in metrics:
            if f"{m} mean" not in r or pd.isna(r[f"{m} mean"]):
                cells.append("-")
                continue
            text = f"{r[f'{m} mean']:.3f} ± {r[f'{m} std']:.3f}" if not pd.isna(r[f"{m} std"]) else f"{r[f'{m} mean']:.3f}"
            cells.append(f"[bold]{text}[/bold]" if r[f"{m} mean"] == best[m] else text)
        table.add_row(r["group"], str(r["n"]), *cells, f"{r['params']:,.0f}", f"{r['fit_seconds']:.1f}")
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmfuse compare", description=__doc__)
    parser.add_argument("paths", nargs="*", help="sweep folders, run folders or globs (default: the latest sweep)")
    parser.add_argument("--by", nargs="*", default=None, help="config keys to group by (default: the keys that vary, seed excluded)")
    parser.add_argument("--metrics", nargs="*", default=list(DEFAULT_METRICS), help="metrics to show")
    parser.add_argument("--out", default=None, help="folder for summary.csv and runs.csv (default: <first path>/comparison)")
    parser.add_argument("--outputs", default="outputs", help="where to look for the latest sweep")
    args = parser.parse_args(argv)

    paths = [Path(p) for p in args.paths]
    if not paths:
        latest = latest_sweep(Path(args.outputs))
        if latest is None:
            print(f"mmfuse compare: no sweeps under {Path(args.outputs) / 'sweeps'}; pass run or sweep folders", file=sys.stderr)
            return 2
        paths = [latest]
    df = load_runs(paths)
    if df.empty:
        print(f"mmfuse compare: no runs (no run.json) under {', '.join(map(str, paths))}", file=sys.stderr)
        return 2
    keys = [k if k.startswith(("cfg.", "choice.")) else f"cfg.{k}" for k in args.by] if args.by else varying_keys(df)
    missing = [k for k in keys if k not in df]
    if missing:
        print(f"mmfuse compare: --by {', '.join(k.split('.', 1)[1] for k in missing)}: no such config key in these runs", file=sys.stderr)
        return 2
    summary = summarise(df, keys, args.metrics)
    print_table(summary, args.metrics, title=f"{len(df)} runs in {', '.join(str(p) for p in paths)} (mean ± std over seeds)")
    failed = df[df["status"] != "completed"]
    for _, r in failed.iterrows():
        print(f"  not completed: {r['run_dir']} [{r['status']}] {r.get('error') or ''}")
    out = Path(args.out) if args.out else (paths[0] if paths[0].is_dir() else paths[0].parent) / "comparison"
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    df.to_csv(out / "runs.csv", index=False)
    print(f"Comparison written to {out}/ (summary.csv, runs.csv)")
    return 0

"""Read run folders (run.json + .hydra/) into tables. Never imports training code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

RECORD = "run.json"
# keys that differ between runs of one configuration by construction
IGNORED_PREFIXES = ("seed", "data.seed", "paths.", "run_name", "logger.", "callbacks.", "trainer.default_root_dir")


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders under the given run folders, sweep folders or globs, sorted by path."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        candidates = [p] if p.exists() else [Path(g) for g in sorted(Path().glob(str(p)))] if not p.is_absolute() else \
            [Path(g) for g in sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))]
        for c in candidates:
            if (c / RECORD).is_file():
                found.add(c.resolve())
            elif c.is_dir():
                found.update(r.parent.resolve() for r in c.rglob(RECORD) if "comparison" not in r.parts)
    return sorted(found)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def load_runs(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """One row per run: status, run_dir, name, `cfg.<key>` config columns, metric columns, params, timing.

    Unreadable records become rows with status `corrupt` and the reason in `error`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows = []
    for run_dir in find_run_dirs(paths):
        try:
            rec = json.loads((run_dir / RECORD).read_text())
        except (OSError, json.JSONDecodeError) as e:
            rows.append({"run_dir": str(run_dir), "status": "corrupt", "error": f"{RECORD}: {e}"})
            continue
        row = {
            "run_dir": str(run_dir),
            "run_name": rec.get("run_name"),
            "status": rec.get("status"),
            "error": (rec.get("error") or {}).get("message"),
            "seed": (rec.get("config") or {}).get("seed"),
            "data_name": (rec.get("data") or {}).get("name"),
            "wall_seconds": (rec.get("timing") or {}).get("wall_seconds"),
            "fit_seconds": (rec.get("timing") or {}).get("fit_seconds"),
            "params": (rec.get("params") or {}).get("total"),
        }
        row.update({f"choice.{k}": v for k, v in (rec.get("choices") or {}).items()})
        row.update({f"cfg.{k}": v for k, v in flatten(rec.get("config") or {}).items()})
        row.update(rec.get("metrics") or {})
        rows.append(row)
    return pd.DataFrame(rows)


def _varies(series: pd.Series) -> bool:
    return series.astype(str).nunique(dropna=False) > 1


def varying_keys(df: pd.DataFrame) -> list[str]:
    """What tells the configurations apart, seed and bookkeeping keys excluded.

    A config-group choice that varies (e.g. `choice.fusion`) stands for the
    keys of its package (`cfg.fusion.*`); such a key is listed as well only
    where it varies among runs with the same choice (e.g. `fusion.modality`
    of unimodal runs).
    """
    choices = [c for c in df.columns if c.startswith("choice.") and _varies(df[c])]
    keys = list(choices)
    for col in df.columns:
        if not col.startswith("cfg.") or col[4:].startswith(IGNORED_PREFIXES) or not _varies(df[col]):
            continue
        owner = next((c for c in choices if col[4:].startswith(c[7:].replace("/", ".") + ".")), None)
        if owner is None or any(_varies(g[col]) for _, g in df.groupby(df[owner].astype(str))):
            keys.append(col)
    return keys

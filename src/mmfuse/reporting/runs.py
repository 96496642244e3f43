"""Read run folders (run.json + .hydra/) into tables. Never imports training code."""
from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

from mmfuse.runs.folder import RECORD, pid_alive, read_record

COMPARISON = "comparison"  # compare's output folder; never mistaken for runs
# keys that differ between runs of one configuration by construction
IGNORED_PREFIXES = ("seed", "data.seed", "paths.", "run_name", "logger.", "callbacks.", "trainer.default_root_dir")
STALE = "running (stale)"


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders under the given run folders, sweep folders or globs, sorted by path."""
    found: set[Path] = set()
    for p in paths:
        for c in expand(p):
            if (c / RECORD).is_file():
                found.add(c.resolve())
            elif c.is_dir():
                found.update(r.parent.resolve() for r in c.rglob(RECORD) if COMPARISON not in r.relative_to(c).parts)
    return sorted(found)


def expand(path: str | Path) -> list[Path]:
    """The path itself if it exists, else what it matches as a glob (absolute or relative)."""
    p = Path(path)
    if p.exists():
        return [p]
    if p.is_absolute():
        return sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))
    return sorted(Path().glob(str(p)))


def latest_sweep(outputs: str | Path = "outputs") -> Path | None:
    """The newest sweep folder under `<outputs>/sweeps/` that holds at least one run."""
    sweeps = sorted((p for p in (Path(outputs) / "sweeps").glob("*") if p.is_dir()), reverse=True)
    return next((s for s in sweeps if find_run_dirs([s])), None)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def hydra_overrides(run_dir: Path) -> list[str]:
    """The job's command-line overrides from Hydra's snapshot (for records that lack them)."""
    try:
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def train_command(overrides: list[str], multirun: bool = False) -> str:
    return shlex.join(["mmfuse", "train", *(["-m"] if multirun else []), *overrides])


def effective_status(rec: dict[str, Any]) -> str:
    """`running` records whose writer died on this host are stale: they will never finish."""
    status = str(rec.get("status") or "unknown")
    if status == "running" and rec.get("host") == socket.gethostname() and not pid_alive(rec.get("pid")):
        return STALE
    return status


def sweep_group(rec: dict[str, Any]) -> str | None:
    """The W&B group the training code gave this run (see train.instantiate_loggers)."""
    cfg = rec.get("config") or {}
    explicit = ((cfg.get("logger") or {}).get("wandb") or {}).get("group")
    if explicit:
        return str(explicit)
    name = cfg.get("experiment_name")
    sweep = rec.get("sweep_dir")
    if name is None:
        return None
    return f"{name}-{Path(sweep).name}" if sweep else str(name)


def corrupt_row(run_dir: Path, reason: str) -> dict[str, Any]:
    overrides = hydra_overrides(run_dir)
    return {"run_dir": str(run_dir), "run_name": run_dir.name, "status": "corrupt", "error": reason,
            "overrides": json.dumps(overrides), "command": train_command(overrides)}


def record_row(run_dir: Path, rec: dict[str, Any]) -> dict[str, Any]:
    overrides = rec.get("overrides") or hydra_overrides(run_dir)
    timing, wandb = rec.get("timing") or {}, rec.get("wandb") or {}
    row = {
        "run_dir": str(run_dir),
        "run_name": rec.get("run_name") or run_dir.name,
        "status": effective_status(rec),
        "error": (rec.get("error") or {}).get("message"),
        "seed": (rec.get("config") or {}).get("seed"),
        "data_name": (rec.get("data") or {}).get("name"),
        "wall_seconds": timing.get("wall_seconds"),
        "fit_seconds": timing.get("fit_seconds"),
        "params": (rec.get("params") or {}).get("total"),
        "overrides": json.dumps(overrides),
        "command": train_command(overrides),
        "sweep_dir": rec.get("sweep_dir"),
        "wandb_dir": wandb.get("dir"),
        "wandb_group": sweep_group(rec),
        "pid": rec.get("pid"),
        "host": rec.get("host"),
    }
    row.update({f"choice.{k}": v for k, v in (rec.get("choices") or {}).items()})
    row.update({f"cfg.{k}": v for k, v in flatten(rec.get("config") or {}).items()})
    row.update({k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))})
    return row


def load_runs(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """One row per run: status, run_dir, name, `cfg.<key>` config columns, metric columns, params, timing.

    Unreadable records become rows with status `corrupt` and the reason in
    `error`; `running` records of dead processes get status `running (stale)`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows = []
    for run_dir in find_run_dirs(paths):
        try:
            rows.append(record_row(run_dir, read_record(run_dir)))
        except ValueError as e:
            rows.append(corrupt_row(run_dir, str(e)))
    df = pd.DataFrame(rows)
    # config values as written: pandas would turn an int option into 0.0 where another strategy lacks it
    config_columns = [c for c in df.columns if c.startswith(("cfg.", "choice."))]
    if config_columns:
        df[config_columns] = pd.DataFrame({c: [r.get(c) for r in rows] for c in config_columns},
                                          index=df.index, dtype=object)
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Recorded metrics (`val/acc_best`, `test/f1`, ...): the slash-named, numeric columns."""
    return [c for c in df.columns
            if "/" in c and not c.startswith(("cfg.", "choice.")) and pd.api.types.is_numeric_dtype(df[c])]


def load_history(runs: pd.DataFrame | Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Per-epoch metrics of every run, one row per (run, epoch): run_dir, epoch, step, val/..., train/...."""
    run_dirs = runs["run_dir"] if isinstance(runs, pd.DataFrame) else [str(d) for d in find_run_dirs(
        [runs] if isinstance(runs, (str, Path)) else runs)]
    rows = []
    for run_dir in run_dirs:
        try:
            history = read_record(Path(run_dir)).get("history") or []
        except ValueError:
            continue  # load_runs already says the record is corrupt
        rows.extend({"run_dir": str(run_dir), **h} for h in history if isinstance(h, dict))
    return pd.DataFrame(rows, columns=None if rows else ["run_dir", "epoch", "step"])


def varies(series: pd.Series) -> bool:
    return series.astype(str).nunique(dropna=False) > 1


def varying_keys(df: pd.DataFrame) -> list[str]:
    """What tells the configurations apart, seed and bookkeeping keys excluded.

    A config-group choice that varies (e.g. `choice.fusion`) stands for the
    keys of its package (`cfg.fusion.*`); such a key is listed as well only
    where it varies among runs with the same choice (e.g. `fusion.modality`
    of unimodal runs).
    """
    choices = [c for c in df.columns if c.startswith("choice.") and varies(df[c])]
    keys = list(choices)
    for col in df.columns:
        if not col.startswith("cfg.") or col[4:].startswith(IGNORED_PREFIXES) or not varies(df[col]):
            continue
        owner = next((c for c in choices if col[4:].startswith(c[7:].replace("/", ".") + ".")), None)
        if owner is None or any(varies(g) for _, g in df[col].groupby(df[owner].astype(str))):
            keys.append(col)
    return keys


def resolve_key(df: pd.DataFrame, key: str) -> str | None:
    """`--by` accepts a column (`cfg.fusion.name`), a choice (`fusion`, `encoder/text`) or a config key."""
    for candidate in (key, f"choice.{key}", f"cfg.{key}"):
        if candidate in df.columns:
            return candidate
    return None


def key_label(key: str) -> str:
    return key.split(".", 1)[1] if key.startswith(("cfg.", "choice.")) else key


def group_labels(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    """`fusion=concat, data.interaction=mixed`: one label per configuration."""
    if not keys:
        return pd.Series(["all runs"] * len(df), index=df.index, dtype=object)
    values = df[keys].astype(object).where(df[keys].notna(), "unset").astype(str)
    return values.apply(lambda r: ", ".join(f"{key_label(k)}={r[k]}" for k in keys), axis=1)

"""OmegaConf resolvers that name run and sweep folders.

Kept free of heavy imports: the command line registers them before Hydra
composes the config, and `mmfuse train --help` must stay fast.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path

from omegaconf import OmegaConf

from mmfuse.errors import fail

_STAMPS: dict[tuple, str] = {}
# Parallel launchers (joblib) resolve hydra.sweep.dir again in each worker
# process; the parent's choice travels to them through the environment.
_ENV = "MMFUSE_SWEEP_DIRS"


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def _writable_root(output_dir: str) -> Path:
    root = Path(output_dir)
    if not root.exists():
        if not root.parent.exists():
            fail(
                f"paths.output_dir={output_dir}: its parent folder does not exist; create it or choose another "
                f"paths.output_dir"
            )
        try:
            root.mkdir(exist_ok=True)
        except OSError as e:
            fail(f"paths.output_dir={output_dir}: cannot create it ({e.strerror}); choose a writable paths.output_dir")
    if not root.is_dir():
        fail(f"paths.output_dir={output_dir} is not a folder")
    if not os.access(root, os.W_OK | os.X_OK) or not _can_create_in(root):
        fail(f"paths.output_dir={output_dir} is not writable; choose a writable paths.output_dir")
    return root


def _can_create_in(folder: Path) -> bool:
    """os.access says yes to root even on a read-only file system; try it."""
    try:
        probe = folder / f".mmfuse-write-test-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def _unique(parent: Path, name_for: callable, key: tuple) -> str:
    """One folder name per (process, key); never the name of a folder that exists already."""
    if key not in _STAMPS:
        stamp = _stamp()
        while (parent / name_for(stamp)).exists():
            stamp = _stamp()
        _STAMPS[key] = str(parent / name_for(stamp))
    return _STAMPS[key]


def run_dir(output_dir: str, name: str) -> str:
    root = _writable_root(output_dir)
    return _unique(root / "runs", lambda s: f"{s}_{name}", ("run", str(root), name))


def sweep_dir(output_dir: str) -> str:
    root = _writable_root(output_dir)
    inherited = json.loads(os.environ.get(_ENV, "{}"))
    if str(root) in inherited:
        return inherited[str(root)]
    path = _unique(root / "sweeps", lambda s: s, ("sweep", str(root)))
    os.environ[_ENV] = json.dumps({**inherited, str(root): path})
    return path


def sweeps_created() -> list[str]:
    """Sweep folders this process has named (the launcher's jobs live below them)."""
    return [path for key, path in _STAMPS.items() if key[0] == "sweep"]


def safe_name(text: str, limit: int = 120) -> str:
    """A folder-safe version of Hydra's override_dirname (no '/', bounded length)."""
    text = re.sub(r"[^A-Za-z0-9=,._+-]+", "-", str(text).replace("/", "."))
    return (text[:limit] or "job").strip("-") or "job"


def run_name(*, _root_) -> str:
    fusion = _root_.get("fusion") or {}
    name = str(fusion.get("name", "run"))
    modality = fusion.get("modality") if name == "unimodal" else None
    seed = _root_.get("seed")
    return f"{name}-{modality}-s{seed}" if modality else f"{name}-s{seed}"


def register_resolvers() -> None:
    for name, fn in {
        "mmfuse_run_dir": run_dir,
        "mmfuse_sweep_dir": sweep_dir,
        "mmfuse_safe_name": safe_name,
        "mmfuse_run_name": run_name,
        "mmfuse_cwd": os.getcwd,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=False)

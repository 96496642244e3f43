"""Where a run came from: the code's git state and the package versions, recorded in run.json."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in (
        "torch",
        "pytorch-lightning",
        "hydra-core",
        "omegaconf",
        "torchmetrics",
        "wandb",
        "numpy",
        "torchvision",
    ):
        try:
            out[name.replace("-", "_").replace("_core", "")] = version(name)
        except PackageNotFoundError:
            out[name.replace("-", "_").replace("_core", "")] = None
    return out

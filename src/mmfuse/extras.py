"""Optional dependencies that cost a lot, installed as extras, and the one-line error when one is missing.

    pip install mmfuse                 training, sweeps (basic and joblib launchers), W&B, CSV, reports
    pip install 'mmfuse[search]'       + Hydra's Optuna sweeper: hparams_search=... (optuna 2.x, SQLAlchemy, alembic)
    pip install 'mmfuse[cluster]'      + Hydra's submitit launcher: hydra/launcher=slurm|submitit_slurm|submitit_local
    pip install 'mmfuse[tensorboard]'  + tensorboardX: logger=tensorboard

`needed_by_command_line(argv, folders)` reads the choices of a `mmfuse train` command line (and the config files they
pick, following their defaults lists) for a sweeper, launcher or logger that needs an extra, before Hydra starts:
without the plugin, Hydra would only say that it cannot find `hydra/sweeper/optuna`.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import yaml

from mmfuse.errors import UserError

# extra -> (what it enables, modules it installs: all present = installed; for tensorboard, either one)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "search": ("Hydra's Optuna sweeper", ("optuna", "hydra_plugins.hydra_optuna_sweeper")),
    "cluster": ("Hydra's submitit launcher", ("submitit", "hydra_plugins.hydra_submitit_launcher")),
    "tensorboard": ("TensorBoard logging", ("tensorboardX", "tensorboard")),
}
ANY_OF = {"tensorboard"}  # Lightning's TensorBoardLogger writes with either package


def _present(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


def missing(extra: str) -> list[str]:
    """The extra's modules that cannot be imported (empty: installed)."""
    modules = EXTRAS[extra][1]
    absent = [m for m in modules if not _present(m)]
    if extra in ANY_OF:
        return absent if len(absent) == len(modules) else []
    return absent


def require(extra: str, needed_by: str) -> None:
    """UserError (exit 2) naming the extra to install when it is missing."""
    absent = missing(extra)
    if absent:
        what = EXTRAS[extra][0]
        listed = " / ".join(absent) if extra in ANY_OF else ", ".join(absent)
        raise UserError(f"{needed_by} needs {what}, which is not installed ({listed} missing): "
                        f"pip install 'mmfuse[{extra}]'")


# --- what a command line needs ------------------------------------------------------------------------------------

def _extra_for(group: str, choice: str) -> str | None:
    if group == "hydra/sweeper" and choice.startswith("optuna"):
        return "search"
    if group == "hydra/launcher" and choice.startswith("submitit"):
        return "cluster"
    return None


def _read(folders: list[Path], group: str, choice: str) -> dict | None:
    for folder in folders:
        path = folder / group / f"{choice}.yaml"
        if path.is_file():
            try:
                return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, OSError):
                return None  # Hydra says what is wrong with it
    return None


def _needs(folders: list[Path], group: str, choice: str, seen: set) -> list[tuple[str, str]]:
    """Extras that choosing `group=choice` needs, with the choice that needs each."""
    if (group, choice) in seen:
        return []
    seen.add((group, choice))
    found = []
    extra = _extra_for(group, choice)
    if extra:
        found.append((extra, f"{group}={choice}"))
    node = _read(folders, group, choice)
    if not isinstance(node, dict):
        return found
    if "TensorBoardLogger" in str(node):
        found.append(("tensorboard", f"{group}={choice}"))
    for entry in node.get("defaults") or []:
        if not isinstance(entry, dict):
            if isinstance(entry, str) and entry != "_self_":
                found += [(e, f"{group}={choice}") for e, _ in _needs(folders, group, entry, seen)]
            continue
        for key, value in entry.items():
            if value is None:
                continue
            sub = str(key).removeprefix("override ").removeprefix("optional ").strip().split("@")[0]
            # `/group` is absolute; a plain `group` is below the group of the config that names it
            sub = sub[1:] if sub.startswith("/") else f"{group}/{sub}"
            found += [(e, f"{group}={choice}") for e, _ in _needs(folders, sub, str(value), seen)]
    return found


def needed_by_command_line(argv: list[str], folders: list[Path]) -> list[tuple[str, str]]:
    """(extra, the choice that needs it) for each `group=choice` on the command line that needs an extra."""
    needs: list[tuple[str, str]] = []
    seen: set = set()
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        if "." in group or not value or value == "null":
            continue
        for choice in value.split(","):  # a sweep over choices
            needs += _needs(folders, group, choice.strip(), seen)
    return list(dict.fromkeys(needs))


def check_command_line(argv: list[str], folders: list[Path]) -> None:
    for extra, choice in needed_by_command_line(argv, folders):
        require(extra, choice)

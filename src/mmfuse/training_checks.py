"""Config checks that must pass before a run builds anything: every `_target_` imports.

Hydra imports a `_target_` only when that part is instantiated, and its error
("No module named 'torch.optim.Nope'") names neither the config key nor what
was expected; an optimizer's target is not even imported until training
starts. `check_targets` imports them all up front and names the key, with the
names nearest a misspelt one. The user's own targets (a module outside mmfuse
and its libraries) are left to mmfuse.plugins, which names the module search
path and checks their shapes; both find the targets with `plugins.targets`.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any

from omegaconf import DictConfig

from mmfuse.plugins import is_plugin, targets

EXPECTED = "the dotted path of an importable class or function"


def why_not_importable(target: Any) -> str | None:
    """None if `target` names an importable object; otherwise what went wrong, in a few words."""
    if not isinstance(target, str) or not target.strip():
        return f"not a dotted path ({type(target).__name__} {target!r})"
    parts = target.split(".")
    module, depth = None, 0
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError as e:
            if e.name and not (name == e.name or name.startswith(f"{e.name}.")):
                return f"importing {name} failed: {e}"  # the module exists but imports something that does not
        except Exception as e:  # noqa: BLE001 - the module exists but fails to import: say how
            return f"importing {name} failed: {type(e).__name__}: {e}"
    if module is None:
        return f"no module named {parts[0]!r}"
    obj = module
    for i, attr in enumerate(parts[depth:], start=depth):
        if not hasattr(obj, attr):
            owner = ".".join(parts[:i])
            close = difflib.get_close_matches(attr, [n for n in dir(obj) if not n.startswith("_")], n=3)
            return f"{owner} has no {attr!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
        obj = getattr(obj, attr)
    if not callable(obj):
        return f"{target} is a {type(obj).__name__}, not a class or function"
    return None


def check_targets(cfg: DictConfig) -> None:
    """Raise ValueError naming the first `_target_` that does not import: its key, its value and what was expected."""
    for key, target in targets(cfg).items():
        if is_plugin(target):
            continue  # the user's own code: mmfuse.plugins checks it, naming the module search path and the contract
        reason = why_not_importable(target)
        if reason:
            raise ValueError(f"{key}._target_={target!r}: cannot be imported ({reason}); expected {EXPECTED}")

"""A user's own code in a config (`_target_: mypackage.MyFusion`): found, checked before training, and recorded.

Where it is imported from: the folder `mmfuse` is launched in comes first on the module search path, as with
`python -m` (mmfuse.cli.process.launch_folder_on_path), then the installed packages. So a module next to the
user's `conf/` folder, or an installed package (`pip install -e .` of the user's project), both work.

- `check_plugins(cfg)`: every `_target_` of the user's code imports, and the user's fusion, encoders and data
  module have the shapes mmfuse calls them with; else one line naming the config key, the target and what is
  wrong (for a target that does not import: the module search path). Cheap: no data, no model.
- `plugin_sources(cfg)`: what identifies the user's code of a run (run.json `plugins`): per config key, the
  target, its module and a sha256 of its source (the whole top-level package, or the single module file), or
  the version of the installed distribution that holds it.
- `code_changes(recorded, now)`: what differs between two such records, one line each (`mmfuse reproduce`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import site
import sys
import sysconfig
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmfuse.errors import UserError
from mmfuse.fusion.base import trait
from mmfuse.fusion.conformance import CheckFailed, check_signature

# targets in these packages are mmfuse's or its dependencies' (their versions are in run.json `versions`)
FRAMEWORK = frozenset({
    "mmfuse", "torch", "torchvision", "torchaudio", "pytorch_lightning", "lightning", "lightning_fabric",
    "torchmetrics", "hydra", "omegaconf", "wandb", "transformers", "builtins", "functools",
})
FUSION_META_KEYS = ("name", "_target_")


def is_plugin(target: Any) -> bool:
    """Whether `target` is the user's code: a dotted path outside mmfuse and its libraries (a non-string, never)."""
    return isinstance(target, str) and target.split(".")[0] not in FRAMEWORK


def targets(cfg: Any) -> dict[str, str]:
    """Every `_target_` in the config, by the key of its node (`fusion`, `encoder.image`, `callbacks.foo`), the
    `hydra` node left out; an interpolated target (`${...}`) resolved where the config resolves it."""
    container = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, (DictConfig, ListConfig)) else cfg
    found: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if "_target_" in node:  # any value: a null or a number is named as not a dotted path
                interpolated = isinstance(target, str) and "${" in target and isinstance(cfg, (DictConfig, ListConfig))
                found[prefix or "<root>"] = OmegaConf.select(cfg, f"{prefix}._target_") if interpolated else target
            for key, value in node.items():
                if not (key == "hydra" and not prefix):
                    walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{prefix}[{i}]")

    walk(container, "")
    return found


def search_path() -> str:
    return ", ".join(p for p in sys.path if p) or "(empty)"


def locate(target: str, key: str) -> Any:
    """The object `target` names (as Hydra's instantiate finds it); UserError naming `key` when it cannot."""
    parts = target.split(".")
    if not target or not all(parts):
        raise UserError(f"{key}._target_={target!r}: expected a dotted path, e.g. mypackage.fusions.MyFusion")

    def cannot_import(module: str, e: BaseException) -> UserError:
        if isinstance(e, ModuleNotFoundError) and e.name and (module == e.name or module.startswith(e.name + ".")):
            return UserError(f"{key}._target_={target}: no module named {e.name!r} on the module search path "
                             f"(the launch folder, then installed packages): {search_path()}")
        where = ""
        if isinstance(e, SyntaxError) and e.filename:
            where = f" ({e.filename} line {e.lineno})"
        first = (str(e).strip().splitlines() or [""])[0]
        return UserError(f"{key}._target_={target}: importing {module} failed{where}: {type(e).__name__}: {first}")

    try:
        obj = importlib.import_module(parts[0])
    except Exception as e:  # noqa: BLE001 - the user's module raised while importing: say what and where
        raise cannot_import(parts[0], e) from None
    for i, part in enumerate(parts[1:], 1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        parent, module = ".".join(parts[:i]), ".".join(parts[: i + 1])
        where = getattr(obj, "__file__", None) or ", ".join(getattr(obj, "__path__", []))
        if not inspect.ismodule(obj) or not hasattr(obj, "__path__"):  # not a package: no submodule to import
            raise UserError(f"{key}._target_={target}: {parent}{f' ({where})' if where else ''} has no "
                            f"attribute {part!r}")
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise cannot_import(module, e) from None
            raise UserError(f"{key}._target_={target}: package {parent} ({where}) has neither a module nor an "
                            f"attribute {part!r}") from None
        except Exception as e:  # noqa: BLE001
            raise cannot_import(module, e) from None
    return obj


# --- shapes of the user's classes -------------------------------------------------------------------------------

def _accepts(func: Any, *args: Any, **kwargs: Any) -> str | None:
    """None if `func` can be called with these arguments, else why not."""
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as e:
        return str(e)
    except ValueError:  # no signature to read (a builtin)
        return None
    return None


def _plain(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def check_fusion(fusion_cfg: Any, key: str = "fusion") -> None:
    cfg = _plain(fusion_cfg)
    target = cfg.get("_target_")
    name = f"{key}={cfg.get('name')}" if cfg.get("name") else key
    cls = locate(target, key)
    if not inspect.isclass(cls):
        raise UserError(f"{name}: _target_={target} is not a class; a fusion is an nn.Module class built as "
                        "cls(in_dims=..., **kwargs)")
    try:
        check_signature(cls)
    except CheckFailed as e:
        raise UserError(f"{name} ({target}): {e}") from None
    kwargs = {k: v for k, v in cfg.items() if k not in FUSION_META_KEYS}
    if trait(cls, "produces_logits"):
        kwargs["num_classes"] = 2
    why = _accepts(cls, in_dims={}, **kwargs)
    if why:
        raise UserError(f"{name} ({target}): cannot be built as {cls.__name__}("
                        f"{', '.join(['in_dims=...', *(f'{k}=...' for k in kwargs)])}) ({why}); its config's keys are "
                        "its arguments")


def check_encoder(encoder_cfg: Any, key: str) -> None:
    cfg = _plain(encoder_cfg)
    target = cfg.get("_target_")
    cls = locate(target, key)
    if not inspect.isclass(cls):
        return  # a function that builds the encoder: its own errors say enough
    why = _accepts(cls.forward, None, "x", None)  # the FusionModule calls encoder(x, mask)
    if why:
        raise UserError(f"{key} ({target}): forward{inspect.signature(cls.forward)} cannot be called as "
                        f"forward(x, mask) ({why})")
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    why = _accepts(cls, spec=None, **kwargs)
    if why:
        raise UserError(f"{key} ({target}): cannot be built as {cls.__name__}("
                        f"{', '.join(['spec=...', *(f'{k}=...' for k in kwargs)])}) ({why}); its config's keys are its "
                        "arguments")


DATA_CONTRACT = ("modalities", "task", "num_classes", "describe", "fingerprint", "setup", "train_dataloader")


def check_data(data_cfg: Any, key: str = "data") -> None:
    target = data_cfg.get("_target_")
    cls = locate(target, key)
    if not inspect.isclass(cls):
        return
    lacking = [name for name in DATA_CONTRACT if not hasattr(cls, name)]
    if lacking:
        raise UserError(f"{key}._target_={target} lacks {lacking}: a data module subclasses "
                        "mmfuse.data.base.MultimodalDataModule (see docs/EXTENDING.md)")


def check_plugins(cfg: DictConfig) -> None:
    """Every `_target_` of the user's code imports; the user's fusion, encoders and data module have the expected
    shapes."""
    found = targets(cfg)
    for key, target in found.items():
        if is_plugin(target):  # the user's code; mmfuse's and its libraries' targets are training_checks'
            locate(target, key)
    if cfg.get("fusion") is not None and is_plugin(found.get("fusion", "mmfuse")):
        check_fusion(cfg.fusion)
    for kind, node in (cfg.get("encoder") or {}).items():
        if node is not None and is_plugin(found.get(f"encoder.{kind}", "mmfuse")):
            check_encoder(node, f"encoder.{kind}")
    if cfg.get("data") is not None and is_plugin(found.get("data", "mmfuse")):
        check_data(cfg.data)


# --- what identifies the user's code ---------------------------------------------------------------------------

def _site_folders() -> list[Path]:
    folders = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")} | set(site.getsitepackages())
    return [Path(f).resolve() for f in folders]


@functools.cache
def _distributions_of(top: str) -> tuple[str, ...]:
    return tuple(metadata.packages_distributions().get(top) or ())  # scans every installed distribution: once


def _installed(top: str, location: Path) -> tuple[str, str] | None:
    """(name, version) of the regular (not editable) installed distribution holding `top`, found at `location`."""
    if not any(location.resolve().is_relative_to(folder) for folder in _site_folders()):
        return None  # the launch folder, or an editable install's source: its code is hashed
    try:  # most distributions are named as they are imported: no scan
        return top, metadata.version(top)
    except metadata.PackageNotFoundError:
        pass
    for name in _distributions_of(top):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def source_hash(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def source_of(target: str) -> dict[str, Any]:
    """The target's module and a sha256 of its source: its whole top-level package, or its single module file."""
    out: dict[str, Any] = {"target": target}
    top = target.split(".")[0]
    try:
        spec = find_spec(top)
    except (ImportError, ValueError) as e:
        return {**out, "error": f"{type(e).__name__}: {e}"}
    if spec is None:
        return {**out, "error": f"no module named {top!r}"}
    package = bool(spec.submodule_search_locations)
    if package:
        root = Path(list(spec.submodule_search_locations)[0])
    elif spec.origin and Path(spec.origin).is_file():
        root = Path(spec.origin).parent
    else:
        return {**out, "error": f"{top}: no source file to hash"}
    installed = _installed(top, root)
    if installed:  # a regular install: its version names the code
        return {**out, "distribution": installed[0], "version": installed[1]}
    files = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts] if package else [Path(spec.origin)]
    out.update(module=top, path=str(root if package else files[0]),
               files=len(files), sha256=source_hash(files, root))
    return out


def plugin_sources(cfg: Any) -> dict[str, dict[str, Any]]:
    """run.json `plugins`: per config key whose `_target_` is the user's code, what identifies that code."""
    return {key: source_of(target) for key, target in targets(cfg).items() if is_plugin(target)}


def code_changes(recorded: dict[str, dict[str, Any]] | None, now: dict[str, dict[str, Any]]) -> list[str]:
    """One line per plug-in whose code differs from the recorded one (nothing recorded: nothing to say)."""
    changes = []
    for key, then in sorted((recorded or {}).items()):
        current = now.get(key) or {}
        target = then.get("target")
        if current.get("target") != target:
            changes.append(f"{key}: the run used {target}, its config now names {current.get('target')}")
        elif then.get("sha256") and current.get("sha256") != then.get("sha256"):
            changes.append(f"{key}: {target}: the source in {current.get('path') or then.get('path')} changed since "
                           f"the run (sha256 {then['sha256'][:12]} -> {str(current.get('sha256'))[:12]})")
        elif then.get("version") and current.get("version") != then.get("version"):
            changes.append(f"{key}: {target}: {then.get('distribution')} {then['version']} -> {current.get('version')}")
    return changes

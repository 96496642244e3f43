"""Where mmfuse's configs come from: its own conf/, and the user's config folders searched before it.

mmfuse's own configs live in the repository's top-level `conf/`; the wheel carries that folder as the package
data `mmfuse.conf` (pyproject.toml maps it), so an installed mmfuse and a checkout read the same files.
`MMFUSE_CONFIG_DIR` replaces them with another complete config folder (one holding a train.yaml).

A user's own config folders (`mmfuse train --config-dir ./conf`, `hydra.searchpath=[file://./conf]`) hold
their own groups and choices (`fusion/myfusion.yaml`, `data/mydata.yaml`, `experiment/...`) and are searched
*before* mmfuse's, so that a user's file of the same name wins over the shipped one. Hydra on its own searches
its main config folder first and `--config-dir` / `hydra.searchpath` after it, and it reads the primary config
(train.yaml) before a `hydra.searchpath` takes effect; so mmfuse takes those options off the command line and
puts the folders in front of its own through Hydra's extension point for this, a SearchPathPlugin, registered
with `Plugins.instance().register` while `searched_first(folders)` is active.

Kept free of heavy imports: `mmfuse train --help` and `--cfg job` use it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from mmfuse.errors import UserError
from mmfuse.tracking.naming import register_resolvers

ENV = "MMFUSE_CONFIG_DIR"
PRIMARY = "train"  # the primary config: train.yaml
SEARCHPATH = "hydra.searchpath"
USER_PROVIDER = "mmfuse user config"


def shipped_config_dir() -> Path:
    """mmfuse's own conf/: the installed package data (`mmfuse/conf` in a wheel), else the checkout's conf/.

    A checkout (an editable install, or `PYTHONPATH=src`) runs `src/mmfuse`, whose configs are `conf/` two
    folders up: the very folder the wheel copies, and the one an editable install maps `mmfuse.conf` to. The
    checkout comes before `importlib.resources.files("mmfuse.conf")`: with `PYTHONPATH=src` over another
    checkout's editable install, that name would be the other checkout's.
    """
    package = Path(str(resources.files("mmfuse")))
    for candidate in (package / "conf", package.parents[1] / "conf"):
        if (candidate / f"{PRIMARY}.yaml").is_file():
            return candidate
    try:  # another installer's layout: wherever it put the package mmfuse.conf
        mapped = Path(str(resources.files("mmfuse.conf")))
        if (mapped / f"{PRIMARY}.yaml").is_file():
            return mapped
    except (ModuleNotFoundError, TypeError):
        pass
    raise UserError(f"mmfuse's own configs are missing: no {PRIMARY}.yaml in {package / 'conf'} (installed) or "
                    f"{package.parents[1] / 'conf'} (checkout); reinstall mmfuse, or set {ENV} to a conf/ folder")


def config_dir() -> Path:
    """The config folder mmfuse composes from: `MMFUSE_CONFIG_DIR` when set (the override), else its own."""
    explicit = os.environ.get(ENV)
    if not explicit:
        return shipped_config_dir()
    path = Path(explicit).expanduser().resolve()
    if not (path / f"{PRIMARY}.yaml").is_file():
        raise UserError(f"{ENV}={explicit}: no {PRIMARY}.yaml in that folder; point it at a complete config folder "
                        "(a copy of mmfuse's conf/), or unset it to use mmfuse's own")
    return path


# --- the user's config folders -------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserConfigs:
    """The user's config folders, in search order, and the command line without the options that named them."""

    folders: tuple[Path, ...]
    argv: tuple[str, ...]


def _folder_of(entry: str, origin: str) -> Path:
    """A searchpath entry (`file://DIR`, `pkg://package.path` or a plain path) as a folder on disk."""
    if entry.startswith("pkg://"):
        package = entry[len("pkg://"):].strip("/").replace("/", ".")
        try:
            return Path(str(resources.files(package)))
        except (ModuleNotFoundError, TypeError, ValueError) as e:
            raise UserError(f"{origin}: {entry}: cannot find the package {package!r} ({e})") from None
    path = entry[len("file://"):] if entry.startswith("file://") else entry
    return Path(path).expanduser().resolve()


def _searchpath_entries(value: str) -> list[str]:
    """The entries of a `hydra.searchpath=[...]` override, parsed by Hydra's own override grammar."""
    # deferred (here and below): Hydra takes 0.2-0.3 s to import; a bad folder is said before that
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"{SEARCHPATH}={value}").value()
    except Exception as e:  # noqa: BLE001 - Hydra's parse error is several lines; its first says it
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{SEARCHPATH}={value}: expected a list of folders, e.g. [file://./conf] ({first})") from None
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
        raise UserError(f"{SEARCHPATH}={value}: expected a list of folders, e.g. [file://./conf]")
    return parsed


def split_user_configs(argv: list[str]) -> UserConfigs:
    """Take `--config-dir DIR` (`-cd DIR`, `--config-dir=DIR`) and `hydra.searchpath=[...]` out of `argv`.

    Folders keep their order on the command line; each is checked (it exists, every YAML file in it parses).
    """
    folders: list[Path] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("--config-dir", "-cd"):
            value = next(args, None)
            if value is None:
                raise UserError(f"{arg} needs a folder, e.g. {arg} ./conf")
            folders.append(check_user_folder(_folder_of(value, arg), f"{arg} {value}"))
        elif arg.startswith("--config-dir="):
            value = arg.split("=", 1)[1]
            folders.append(check_user_folder(_folder_of(value, "--config-dir"), arg))
        elif arg.startswith(f"{SEARCHPATH}="):
            for entry in _searchpath_entries(arg.split("=", 1)[1]):
                folders.append(check_user_folder(_folder_of(entry, SEARCHPATH), f"{SEARCHPATH} entry {entry}"))
        else:
            rest.append(arg)
    return UserConfigs(tuple(dict.fromkeys(folders)), tuple(rest))


def check_user_folder(folder: Path, origin: str) -> Path:
    """The folder exists and every YAML file in it parses; else one line naming the file and line."""
    if not folder.is_dir():
        raise UserError(f"{origin}: no such folder {folder}" if not folder.exists() else
                        f"{origin}: {folder} is not a folder")
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UserError(f"{path}{where}: not valid YAML ({problem})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot be read ({e})") from None
    return folder


_user_folders: list[Path] = []  # searched before mmfuse's configs while `searched_first` is active
_plugin_registered = False


def _register_search_path_plugin() -> None:
    global _plugin_registered
    if _plugin_registered:
        return
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class UserConfigsFirst(SearchPathPlugin):
        """The user's config folders in front of mmfuse's (another application's search path is left alone)."""

        def manipulate_search_path(self, search_path) -> None:
            put_user_folders_first(search_path)

    Plugins.instance().register(UserConfigsFirst)
    _plugin_registered = True


@contextmanager
def searched_first(user_folders: tuple[Path, ...] | list[Path]) -> Iterator[None]:
    """While inside, Hydra searches `user_folders` (in order) before mmfuse's config folder."""
    saved = list(_user_folders)
    _user_folders[:] = [Path(f).resolve() for f in user_folders]
    if _user_folders:
        _register_search_path_plugin()
    try:
        yield
    finally:
        _user_folders[:] = saved


def put_user_folders_first(search_path) -> None:
    """The SearchPathPlugin's work: the user's folders just before Hydra's main folder, when that is mmfuse's."""
    from hydra.core.config_search_path import SearchPathQuery

    if not _user_folders:
        return
    try:
        ours = config_dir()
    except UserError:
        return
    mains = [e.path for e in search_path.get_path() if e.provider == "main"]
    if not mains or Path(str(mains[0]).removeprefix("file://")).resolve() != ours:
        return
    for folder in _user_folders:  # each goes just before main: the first stays first
        search_path.prepend(provider=USER_PROVIDER, path=f"file://{folder}", anchor=SearchPathQuery(provider="main"))


def compose_train(overrides: list[str], user_folders: tuple[Path, ...] | list[Path] = (),
                  return_hydra_config: bool = False):
    """The train config as `mmfuse train` composes it (Hydra's compose API), the user's folders searched first."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    GlobalHydra.instance().clear()
    with searched_first(user_folders), initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(PRIMARY, overrides=list(overrides), return_hydra_config=return_hydra_config)


# --- what there is to choose ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    name: str
    user: bool           # found in a user's folder
    shadows: bool        # a user's choice of the same name as a shipped one (the user's wins)


def group_choices(user_folders: tuple[Path, ...] | list[Path] = ()) -> dict[str, list[Choice]]:
    """Every config group (a folder holding YAML files, hydra/ aside) and its choices, shipped and the user's."""
    shipped = config_dir()

    def groups_in(root: Path) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for path in root.rglob("*.yaml"):
            group = path.parent.relative_to(root).as_posix()
            if path.parent != root and not group.startswith("hydra"):
                found.setdefault(group, set()).add(path.stem)
        return found

    own = groups_in(shipped)
    users: dict[str, set[str]] = {}
    for folder in user_folders:
        for group, names in groups_in(Path(folder)).items():
            users.setdefault(group, set()).update(names)
    out = {}
    for group in sorted(set(own) | set(users)):
        mine, theirs = own.get(group, set()), users.get(group, set())
        out[group] = [Choice(n, n in theirs, n in theirs and n in mine) for n in sorted(mine | theirs)]
    return out


def describe_choice(choice: Choice) -> str:
    if choice.shadows:
        return f"{choice.name} (yours, over the built-in)"
    return f"{choice.name} (yours)" if choice.user else choice.name

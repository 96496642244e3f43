"""What `pip install mmfuse` puts on disk, and what each extra adds: the sizes behind the README's install section.

Reads pyproject.toml's requirements and follows them through the installed distributions' own metadata (this
environment holds every extra: `.[dev]`), summing the files each distribution's RECORD lists, as installed here.
Nothing is downloaded. A distribution counts once, for the first set that needs it: plain first, then each extra.

    python benchmarks/bench_install_size.py
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("search", "cluster", "tensorboard", "hf", "onnx")


def closure(requirements: list[str]) -> set[str]:
    """Every installed distribution these requirements pull in (markers evaluated here, extras followed)."""
    seen: set[str] = set()
    todo = [(Requirement(r), ()) for r in requirements]
    while todo:
        req, extras = todo.pop()
        env = default_environment()
        if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in (extras or ("",))):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return {k.split("[")[0] for k in seen if _installed(k.split("[")[0])}


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def size_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    plain = closure(project["dependencies"]) - {"mmfuse"}
    print(f"pip install mmfuse: {len(plain)} distributions, {size_mb(plain):,.0f} MiB installed")
    biggest = sorted(plain, key=lambda n: -size_mb({n}))[:5]
    print("  largest: " + ", ".join(f"{n} {size_mb({n}):,.0f} MiB" for n in biggest))
    torch = closure(["torch", "torchvision"]) & plain
    rest = plain - torch
    print(f"  torch, torchvision and what they pull in: {len(torch)} distributions, {size_mb(torch):,.0f} MiB; "
          f"everything else: {len(rest)} distributions, {size_mb(rest):,.0f} MiB")
    counted = set(plain)
    for extra in EXTRAS:
        added = closure(optional[extra]) - counted - {"mmfuse"}
        counted |= added
        print(f"  + [{extra}]: {len(added)} distributions, {size_mb(added):,.1f} MiB "
              f"({', '.join(sorted(added)) or 'nothing new'})")
    full = counted - plain
    print(f"pip install 'mmfuse[{','.join(EXTRAS)}]': {len(counted)} distributions, {size_mb(counted):,.0f} MiB "
          f"({size_mb(full):,.0f} MiB more than plain, {size_mb(counted) / size_mb(plain):.2f}x)")


if __name__ == "__main__":
    main()

"""Import torchmetrics without the optional packages it loads only because they are installed.

torchmetrics 1.9 imports every metric domain when it is imported, and with them
scipy.signal, torchvision, transformers and matplotlib wherever those are
installed (Lightning-AI/torchmetrics#3457; Lightning imports torchmetrics too,
to read its version). A training run uses none of them through torchmetrics:
on a 2-core machine they are about half of the imports before the first step
(`python -X importtime -c "import mmfuse.train"`; `benchmarks/bench_startup.py`).

`import_torchmetrics()` imports torchmetrics while its availability checks
answer "not installed" for those packages, then forgets those answers, so a
later check (a metric domain imported later) asks again and sees the truth.
What torchmetrics imported during that import lacks only the metrics built on
those packages (BERTScore, CLIPScore, ARNIQA, detection IoUs, `Metric.plot`),
which mmfuse does not use; mmfuse's own imports of torchvision or transformers
(pretrained encoders, image decoding) are untouched. The command line applies
it once per process before importing the training code; importing
`mmfuse.train` without it (a notebook, the tests) gets the full import.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

DEFERRED = ("scipy", "torchvision", "transformers", "matplotlib")


def _package(requirement: str) -> str:
    from packaging.requirements import Requirement

    try:
        return Requirement(requirement).name
    except Exception:  # noqa: BLE001 - not a requirement string: a module path
        return requirement.split(".")[0]


@contextmanager
def _unseen(packages: tuple[str, ...]) -> Iterator[None]:
    """lightning_utilities' availability checks (torchmetrics' only way to ask) answer False for `packages`."""
    from lightning_utilities.core import imports as lu

    answered, active = [], [True]
    saved = lu.package_available, lu.module_available, lu.RequirementCache._check_available

    def hidden(name: str) -> bool:  # modules that bound the replacements below ask through them later: truthfully
        return active[0] and name.split(".")[0] in packages

    def check_available(cache) -> None:
        name = cache.requirement or cache.module or ""
        if not hasattr(cache, "available") and hidden(_package(name)):
            cache.available, cache.message = False, f"{name}: not imported with torchmetrics (mmfuse.lean_imports)"
            answered.append(cache)
            return
        saved[2](cache)

    lu.package_available = lambda name: not hidden(name) and saved[0](name)
    lu.module_available = lambda path: not hidden(path) and saved[1](path)
    lu.RequirementCache._check_available = check_available
    try:
        yield
    finally:
        active[0] = False
        lu.package_available, lu.module_available, lu.RequirementCache._check_available = saved
        for cache in answered:  # asked again later, they say what is installed
            del cache.available, cache.message


def import_torchmetrics() -> bool:
    """Import torchmetrics without DEFERRED; False where it was imported already (nothing to do)."""
    if "torchmetrics" in sys.modules:
        return False
    with _unseen(DEFERRED):
        import torchmetrics  # noqa: F401
    return True

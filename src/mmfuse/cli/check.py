"""`mmfuse check fusion=NAME`: the fusion contract's checks, which every built-in strategy passes, on one strategy.

    mmfuse check --config-dir ./conf fusion=myfusion
    mmfuse check fusion=lowrank fusion.rank=8

The strategy is composed as `mmfuse train` composes it (your config folders first, the same overrides), built
as the model builds it (`cls(in_dims=..., **its config)`) for 2, 3 and 4 generated modalities, and checked
(mmfuse.fusion.conformance): output shape, a gradient for every parameter, absent modalities change nothing,
the same output for the same seed, torch.export traces it. Prints a pass/fail table in seconds, before a sweep.
Exit status: 0 every check passes, 1 a check fails, 2 bad input (an unknown choice, a target that does not import).
"""
from __future__ import annotations

import shutil
import sys
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mmfuse.cli.command import run_command
from mmfuse.configs import split_user_configs
from mmfuse.errors import UserError

PROG = "mmfuse check"


def compose(overrides: list[str], folders):
    # deferred (here and below): Hydra and torch, once argv is read: --help and a bad folder stay instant
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from mmfuse.configs import compose_train

    try:
        cfg = compose_train(overrides, folders)
    except HydraException as e:
        raise UserError((str(e).strip().splitlines() or [type(e).__name__])[0]) from None
    return OmegaConf.to_container(cfg.fusion, resolve=True)


def print_table(name: str, target: str, results, seconds: float) -> bool:
    sets = list(dict.fromkeys(r.modalities for r in results))
    checks = list(dict.fromkeys(r.check for r in results))
    table = Table(title=f"fusion={name} ({target})", title_justify="left")
    table.add_column("check")
    for mods in sets:
        table.add_column(f"{len(mods)} modalities", justify="center")
    by = {(r.check, r.modalities): r for r in results}
    for check in checks:
        cells = [Text("pass", style="green") if by[(check, m)].passed else Text("FAIL", style="bold red") for m in sets]
        table.add_row(check, *cells)
    out = Console(width=shutil.get_terminal_size((160, 24)).columns, highlight=False)
    out.print(table)
    failed = [r for r in results if not r.passed]
    for r in failed:
        out.print(Text(f"  FAIL {r.check} [{', '.join(r.modalities)}]: {r.message}", style="red"))
    sizes = [str(len(m)) for m in sets]
    counts = " and ".join([", ".join(sizes[:-1]), sizes[-1]] if len(sizes) > 1 else sizes)
    verdict = (f"fusion={name}: every check passes on {counts} modalities ({seconds:.1f} s)" if not failed else
               f"fusion={name}: {len(failed)} of {len(results)} checks fail ({seconds:.1f} s)")
    out.print(Text(verdict, style="bold red" if failed else "bold green"))
    return not failed


def check(argv: list[str]) -> int:
    user = split_user_configs(argv)
    started = time.perf_counter()
    fusion = compose(list(user.argv), user.folders)

    from mmfuse.fusion.base import trait
    from mmfuse.fusion.conformance import factory_for, modality_sets, run_checks
    from mmfuse.plugins import FUSION_META_KEYS, check_fusion, locate

    check_fusion(fusion)
    cls = locate(fusion["_target_"], "fusion")
    kwargs = {k: v for k, v in fusion.items() if k not in FUSION_META_KEYS}
    sets = modality_sets(trait(cls, "min_modalities"), trait(cls, "max_modalities"))
    results = run_checks(factory_for(cls, kwargs), sets)
    return 0 if print_table(fusion.get("name"), fusion["_target_"], results, time.perf_counter() - started) else 1


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    if not any(a.startswith("fusion=") for a in argv):
        print(f"{PROG}: checking the default strategy (fusion=concat); name yours with fusion=<choice>",
              file=sys.stderr)
    return run_command(PROG, lambda: check(argv))

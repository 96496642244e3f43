"""Where each group came from: the command that reruns it and how its config differs from the others."""
from __future__ import annotations

import json

import pandas as pd

from mmfuse.reporting.runs import IGNORED_PREFIXES, train_command, varies

SEED_KEYS = ("seed", "+seed", "++seed")
SEEDS_SLOT = "\0seeds\0"  # where the seed override stood, so the command keeps the user's order


def override_key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def split_seed(overrides: list[str]) -> tuple[tuple[str, ...], str | None]:
    """(overrides with the seed replaced by a slot, the seed value or None)."""
    seed, rest = None, []
    for o in overrides:
        if override_key(o) in SEED_KEYS and seed is None:
            seed = o.split("=", 1)[1]
            rest.append(f"{override_key(o)}={SEEDS_SLOT}")
        else:
            rest.append(o)
    return tuple(rest), seed


def seed_sort_key(seed: str) -> tuple:
    try:
        return (0, float(seed), seed)
    except ValueError:
        return (1, 0.0, seed)


def group_commands(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Per group, the `mmfuse train` command(s) that rerun it: its runs' overrides, seeds joined into one sweep."""
    out: dict[str, list[str]] = {}
    for group, grp in runs.groupby("group", sort=True):
        seeds_by_rest: dict[tuple[str, ...], list[str]] = {}
        for raw in grp["overrides"]:
            rest, seed = split_seed(json.loads(raw) if isinstance(raw, str) else [])
            seeds_by_rest.setdefault(rest, []).append(seed)
        commands = []
        for rest, seeds in seeds_by_rest.items():
            known = sorted({s for s in seeds if s is not None}, key=seed_sort_key)
            overrides = [o.replace(SEEDS_SLOT, ",".join(known)) for o in rest]
            commands.append(train_command(overrides, multirun=len(known) > 1))
        out[group] = commands
    return out


def differing_config_keys(runs: pd.DataFrame) -> list[str]:
    """Config keys whose value is not the same in every run (seed and bookkeeping keys excluded)."""
    return [c for c in runs.columns
            if c.startswith("cfg.") and not c[4:].startswith(IGNORED_PREFIXES) and varies(runs[c])]


def config_differences(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Per group, `key=value` for every config key that differs somewhere across the compared runs."""
    keys = differing_config_keys(runs)
    out: dict[str, list[str]] = {}
    for group, grp in runs.groupby("group", sort=True):
        items = []
        for key in keys:
            values = list(dict.fromkeys(grp[key].dropna().astype(str)))
            if values:  # a key this group's config does not have (another strategy's option) is left out
                items.append(f"{key[4:]}={' | '.join(values)}")
        out[group] = items
    return out


def provenance(runs: pd.DataFrame) -> pd.DataFrame:
    commands, differences = group_commands(runs), config_differences(runs)
    return pd.DataFrame([{"group": g, "commands": commands[g], "config_differences": differences.get(g, [])}
                         for g in commands])

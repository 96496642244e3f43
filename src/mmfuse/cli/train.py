"""`mmfuse train`: Hydra's main (`-m` sweeps); a failed job is said in one line and recorded, and a sweep goes on.

Heavy imports (torch, Lightning) happen only once a job really runs, so `mmfuse train --help` and `--cfg job` stay
fast.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mmfuse.cli import process
from mmfuse.cli.command import run_command
from mmfuse.configs import PRIMARY, config_dir, describe_choice, group_choices, searched_first, split_user_configs
from mmfuse.errors import report
from mmfuse.extras import check_command_line
from mmfuse.runs.folder import read_record
from mmfuse.tracking import naming, startup


def train_help(argv: list[str], user_folders: tuple[Path, ...] = ()) -> int:
    """`mmfuse train --help`: Hydra's help text, made without Hydra's help machinery.

    Hydra lists each group's options by copying the whole config store once
    per group, which takes seconds once the sweeper and launcher plugins
    register theirs. The groups are the folders of conf/ and of the user's
    config folders; the composed config is what `--cfg job` prints, with the
    same overrides.
    """
    import yaml

    conf = config_dir()
    text = (yaml.safe_load((conf / "hydra" / "default.yaml").read_text()) or {}).get("help") or {}
    print(text.get("header", "mmfuse train").rstrip())
    print("== Config groups ==\nChoose one of each with group=choice:\n")
    if user_folders:
        print(f"(yours: from {', '.join(str(f) for f in user_folders)}, searched first)\n")
    for group, choices in group_choices(user_folders).items():
        print(f"{group}: {', '.join(describe_choice(c) for c in choices)}")
    print("\n== Composed config ==\nOverride anything with key=value:\n", flush=True)
    code = run_train([a for a in argv if a not in ("--help", "-h")] + ["--cfg", "job"], user_folders)
    print(text.get("footer", "").rstrip())
    return code


def run_train(argv: list[str], user_folders: tuple[Path, ...] = ()) -> int:
    """Run Hydra's main; a failed job is reported in one line and recorded, and a sweep goes on.

    The user's config folders are searched before mmfuse's own (mmfuse.configs.searched_first).
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    naming.register_resolvers()
    failures: list[str] = []
    multirun = False

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=PRIMARY)
    def _train(cfg) -> None:
        nonlocal multirun
        startup.mark("composed")
        process.launch_folder_on_path(HydraConfig.get().runtime.cwd)  # also in a launcher's job process
        process.skip_launch_import()
        train = process.load_training()
        startup.mark("imported")

        # a joblib worker then skips the interpreter's module teardown when the sweep ends
        process.fast_exit_in_worker()
        try:
            record = train(cfg)
        except Exception as e:  # noqa: BLE001 - recorded in run.json by train(); here it only needs saying
            where = HydraConfig.get().runtime.output_dir
            report(f"mmfuse train [{where}]", e)
            failures.append(where)
            if HydraConfig.get().mode != RunMode.MULTIRUN or cfg.get("sweep", {}).get("fail_fast"):
                raise SystemExit(1) from None
            multirun = True
            return None  # a sweeper that optimises (Optuna) marks the trial failed and goes on
        metric = cfg.get("optimized_metric")
        if metric:
            value = (record.get("metrics") or {}).get(metric)
            if value is None:
                raise SystemExit(
                    f"optimized_metric={metric}: not recorded by this run; recorded: "
                    f"{sorted((record.get('metrics') or {}))}"
                )
            return float(value)
        return None

    sys.argv = ["mmfuse train", *argv]
    with searched_first(user_folders):
        _train()
    # jobs of parallel launchers fail in other processes: their records say so
    for sweep in naming.sweeps_created():
        for record in sorted(Path(sweep).glob("*/run.json")):
            if str(record.parent) not in failures and read_record(record.parent).get("status") != "completed":
                failures.append(str(record.parent))
    if failures:
        print(f"mmfuse train: {len(failures)} job(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    def work() -> int:
        user = split_user_configs(argv)  # a missing folder or a YAML syntax error: one line, exit 2
        rest = list(user.argv)
        check_command_line(rest, [*user.folders, config_dir()])  # an extra a choice needs: one line, exit 2
        if "--help" in rest or "-h" in rest:
            return train_help(rest, user.folders)
        return run_train(rest, user.folders)

    return run_command("mmfuse train", work)

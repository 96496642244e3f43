"""`mmfuse train`: Hydra's main (`-m` sweeps); a failed job is said in one line and recorded, and a sweep goes on.

Heavy imports (torch, Lightning) happen only once a job really runs, so `mmfuse train --help` and `--cfg job` stay
fast.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from mmfuse.cli import process
from mmfuse.cli.command import run_command
from mmfuse.errors import UserError, report
from mmfuse.runs.folder import read_record
from mmfuse.tracking import naming, startup


def config_dir() -> Path:
    explicit = os.environ.get("MMFUSE_CONFIG_DIR")
    path = Path(explicit) if explicit else Path(__file__).resolve().parents[3] / "conf"
    if not (path / "train.yaml").is_file():
        raise UserError(f"no train.yaml in config folder {path}; set MMFUSE_CONFIG_DIR to the project's conf/ folder", code=1)
    return path


def train_help(argv: list[str]) -> int:
    """`mmfuse train --help`: Hydra's help text, made without Hydra's help machinery.

    Hydra lists each group's options by copying the whole config store once
    per group, which takes seconds once the sweeper and launcher plugins
    register theirs. The groups are the folders of conf/; the composed config
    is what `--cfg job` prints, with the same overrides.
    """
    import yaml

    conf = config_dir()
    text = (yaml.safe_load((conf / "hydra" / "default.yaml").read_text()) or {}).get("help") or {}
    groups = sorted(g for g in {p.parent.relative_to(conf).as_posix() for p in conf.rglob("*.yaml") if p.parent != conf}
                    if not g.startswith("hydra"))
    print(text.get("header", "mmfuse train").rstrip())
    print("== Config groups ==\nChoose one of each with group=choice:\n")
    for group in groups:
        print(f"{group}: {', '.join(sorted(p.stem for p in (conf / group).glob('*.yaml')))}")
    print("\n== Composed config ==\nOverride anything with key=value:\n", flush=True)
    code = run_train([a for a in argv if a not in ("--help", "-h")] + ["--cfg", "job"])
    print(text.get("footer", "").rstrip())
    return code


def run_train(argv: list[str]) -> int:
    """Run Hydra's main; a failed job is reported in one line and recorded, and a sweep goes on."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode


    naming.register_resolvers()
    failures: list[str] = []
    multirun = False

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
    def _train(cfg) -> None:
        nonlocal multirun
        startup.mark("composed")
        process.skip_launch_import()
        train = process.load_training()
        startup.mark("imported")

        process.fast_exit_in_worker()  # a joblib worker then skips the interpreter's module teardown when the sweep ends
        try:
            record = train(cfg)
        except Exception as e:  # recorded in run.json by train(); here it only needs saying
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
                raise SystemExit(f"optimized_metric={metric}: not recorded by this run; recorded: "
                                 f"{sorted((record.get('metrics') or {}))}")
            return float(value)
        return None

    sys.argv = ["mmfuse train", *argv]
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
    if "--help" in argv or "-h" in argv:
        return run_command("mmfuse", lambda: train_help(argv))
    return run_command("mmfuse", lambda: run_train(argv))

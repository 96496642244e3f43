"""`mmfuse <command>`: train (Hydra; -m sweeps) and compare.

Heavy imports (torch, Lightning) happen only once a command really runs, so
`mmfuse train --help` and `--cfg job` stay fast.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = """usage: mmfuse <command> [args]

commands:
  train     train and test one model from the Hydra config in conf/ (add -m to sweep;
            resume=RUN_DIR continues an interrupted run or sweep)
  compare   summarise runs or sweeps: mean ± std over seeds per strategy
  reproduce re-run a run (or a sweep's jobs) from its config snapshot and compare the metrics
  eval      evaluate a run's best (or last) checkpoint with the run's own config (overrides allowed)
  export    write a run's model as a self-checked torch.export (.pt2) / ONNX artifact with its preprocessing
  predict   class names and probabilities for image / audio / text files, from an artifact or a run

`mmfuse <command> --help` for a command's options.
"""


# command -> module whose main(argv) runs it, imported only when the command runs
COMMANDS = {
    "compare": "mmfuse.reporting.compare",
    "reproduce": "mmfuse.lifecycle.reproduce",
    "eval": "mmfuse.lifecycle.evaluate",
    "export": "mmfuse.deploy.export",
    "predict": "mmfuse.deploy.predict",
}


def config_dir() -> Path:
    explicit = os.environ.get("MMFUSE_CONFIG_DIR")
    path = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "conf"
    if not (path / "train.yaml").is_file():
        sys.exit(f"mmfuse: no train.yaml in config folder {path}; set MMFUSE_CONFIG_DIR to the project's conf/ folder")
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


def load_training():
    """Import the training code as a command that trains should; returns `train`.

    torchmetrics comes without the optional packages nothing here uses (mmfuse/lean_imports.py), and the settings
    a training process wants (log and warning filters, the NVML check) are applied once Lightning is loaded.
    """
    from mmfuse.lean_imports import import_torchmetrics

    import_torchmetrics()
    from mmfuse import train as training

    training.apply_process_settings()
    return training.train


def run_train(argv: list[str]) -> int:
    """Run Hydra's main; a failed job is reported in one line and recorded, and a sweep goes on."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mmfuse.errors import report
    from mmfuse.tracking import naming, startup

    naming.register_resolvers()
    failures: list[str] = []
    multirun = False

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
    def _train(cfg) -> None:
        nonlocal multirun
        startup.mark("composed")
        from mmfuse.fastexit import fast_exit_in_worker
        from mmfuse.tracking import wandb_setup

        wandb_setup.skip_launch_import()
        train = load_training()
        startup.mark("imported")

        fast_exit_in_worker()  # a joblib worker then skips the interpreter's module teardown when the sweep ends
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
            if str(record.parent) not in failures and '"status": "completed"' not in record.read_text():
                failures.append(str(record.parent))
    if failures:
        print(f"mmfuse train: {len(failures)} job(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def console_main() -> None:
    """The `mmfuse` console script and `python -m mmfuse`: main(), then an exit without module teardown."""
    try:
        code = main()
    except SystemExit as e:  # sys.exit(message) from a command: say it, as the interpreter would
        if e.code is None or isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    from mmfuse.fastexit import exit_now

    exit_now(0 if code is None else int(code))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from mmfuse.tracking import startup

    startup.mark("cli")
    if "--verbose" in rest:
        rest.remove("--verbose")
        os.environ["MMFUSE_VERBOSE"] = "1"
    if command == "train" and any(a.startswith("resume=") for a in rest):
        # the run's own folder and snapshot, not a new Hydra run folder
        from mmfuse.lifecycle.resume import main as resume_main

        if not {"--help", "-h"} & set(rest):
            load_training()
        return resume_main(rest)
    if command == "train" and ("--help" in rest or "-h" in rest):
        return train_help(rest)
    if command == "train":
        return run_train(rest)
    if command in COMMANDS:
        from importlib import import_module

        if command == "reproduce" and not {"--help", "-h"} & set(rest):  # trains again
            load_training()
        return import_module(COMMANDS[command]).main(rest)
    print(f"mmfuse: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

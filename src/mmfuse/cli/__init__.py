"""`mmfuse <command>`: train (Hydra; -m sweeps) and compare.

Heavy imports (torch, Lightning) happen only once a command really runs, so
`mmfuse train --help` and `--cfg job` stay fast.
"""
from __future__ import annotations

import os
import sys

from mmfuse.cli.process import exit_now, launch_folder_on_path
from mmfuse.tracking import startup

USAGE = """usage: mmfuse <command> [args]

commands:
  train     train and test one model from the Hydra config in conf/ (add -m to sweep;
            resume=RUN_DIR continues an interrupted run or sweep)
  compare   summarise runs or sweeps: mean ± std over seeds per strategy
  reproduce re-run a run (or a sweep's jobs) from its config snapshot and compare the metrics
  eval      evaluate a run's best (or last) checkpoint with the run's own config (overrides allowed)
  export    write a run's model as a self-checked torch.export (.pt2) / ONNX artifact with its preprocessing
  predict   class names and probabilities for image / audio / text files, from an artifact or a run
  check     run the fusion contract's checks on a strategy (yours: --config-dir ./conf fusion=myfusion)

`mmfuse <command> --help` for a command's options.
"""


# command -> module whose main(argv) runs it, imported only when the command runs
COMMANDS = {
    "train": "mmfuse.cli.train",
    "compare": "mmfuse.cli.compare",
    "reproduce": "mmfuse.cli.reproduce",
    "eval": "mmfuse.cli.evaluate",
    "export": "mmfuse.cli.export",
    "predict": "mmfuse.cli.predict",
    "check": "mmfuse.cli.check",
}


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
    exit_now(0 if code is None else int(code))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    launch_folder_on_path()  # a user's `_target_` module next to their conf/ imports as with `python -m mmfuse`
    startup.mark("cli")
    if "--verbose" in rest:
        rest.remove("--verbose")
        os.environ["MMFUSE_VERBOSE"] = "1"
    if command == "train" and any(a.startswith("resume=") for a in rest):
        command = "resume"  # the run's own folder and snapshot, not a new Hydra run folder
    if command in COMMANDS or command == "resume":
        from importlib import import_module

        return import_module(COMMANDS.get(command, "mmfuse.cli.resume")).main(rest)
    print(f"mmfuse: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

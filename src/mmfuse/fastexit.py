"""Leave the process without the interpreter's module teardown once a command's work is written.

With torch, Lightning and their dependencies loaded (about 4,000 modules) the
interpreter's own finalisation takes about 2.5 s on a 2-core machine: every
module's namespace cleared and every object freed, none of it writing
anything. mypy exits the same way (`--fast-exit`, its default). Everything
that does write still runs first, in the order the interpreter would run it:
non-daemon threads are joined and threading's exit hooks run (joblib's
workers are shut down there), then every `atexit` hook (logging flushes its
files, W&B finishes its service), then the standard streams are flushed.

`python benchmarks/bench_startup.py` prints the exit time of a run with and
without it.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
import threading
from typing import NoReturn

_worker_hook = False


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed pipe (`mmfuse compare | head`) has nothing to flush
            pass


def exit_now(code: int) -> NoReturn:
    """The interpreter's shutdown up to its module teardown, then `os._exit(code)`."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_hooks = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_hooks is None:  # another interpreter: exit the usual way
        sys.exit(code)
    shutdown_threads()
    run_exit_hooks()
    _flush_std_streams()
    os._exit(code)


def _worker_exit() -> None:
    """Last exit hook of a joblib (loky) worker process; hooks registered after it (W&B's) have run."""
    logging.shutdown()
    _flush_std_streams()
    os._exit(0)  # loky's worker exits with status 0 once its work queue is closed; a failure went back as a traceback


def fast_exit_in_worker() -> None:
    """In a multiprocessing worker that runs jobs (joblib's launcher), end the process without module teardown.

    Called at the start of every job; registers once. The worker's own
    shutdown (multiprocessing's finalizers, thread joins) happens before exit
    hooks run, so only the module teardown is skipped.
    """
    global _worker_hook
    if _worker_hook or multiprocessing.parent_process() is None:
        return
    atexit.register(_worker_exit)
    _worker_hook = True

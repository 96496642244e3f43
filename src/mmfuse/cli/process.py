"""Process-level settings and tricks, applied by the command line: no other mmfuse module changes global state.

Each is measured (`benchmarks/bench_startup.py`, `bench_parallel.py`; figures in benchmarks/RESULTS.md) and
listed with its reason in docs/PROCESS.md. Where a library offers no public way, the private name used is said
next to it, with the version it was checked against.

- `apply_process_settings()`: Lightning's "Tip:" log lines filtered, one torch-vs-Lightning deprecation warning
  silenced, and PYTORCH_NVML_BASED_CUDA_CHECK unset where NVML cannot load (`drop_a_failing_nvml_check`).
- `import_torchmetrics()`: torchmetrics imported without scipy.signal, torchvision, transformers and matplotlib.
- `skip_launch_import()` / `prewarm_wandb()`: wandb.init without importing wandb.sdk.launch when nothing was staged.
- `exit_now()` / `fast_exit_in_worker()`: leave without the interpreter's module teardown once the work is written.
- `load_training()`: all of the above that a training process wants, then `mmfuse.train.train`.
- `launch_folder_on_path()`: the folder mmfuse is launched in first on the module search path, as `python -m`
  puts it, so that the `mmfuse` console script imports a user's module next to their conf/ folder too.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

from mmfuse.tracking import wandb_setup

log = logging.getLogger(__name__)


def launch_folder_on_path(folder: str | None = None) -> bool:
    """Put the launch folder (default: the current one) first on sys.path, as `python -m mmfuse` does; returns
    whether it was added.

    The console script's sys.path starts with its own bin/ folder instead, so a user's `_target_:
    myfusion.MyFusion` next to their conf/ would import with `python -m mmfuse` and not with `mmfuse`.
    Like `python -m`, a module there shadows an installed one of the same name. A job that runs in another
    process (a cluster launcher's) passes the folder Hydra recorded at launch (`hydra.runtime.cwd`).
    """
    here = os.path.abspath(folder or os.getcwd())
    if sys.path and (sys.path[0] == here or (sys.path[0] == "" and os.getcwd() == here)):
        return False
    sys.path.insert(0, here)
    return True


def load_training() -> Callable:
    """Import the training code as a command that trains should; returns `mmfuse.train.train`."""
    import_torchmetrics()
    from mmfuse.train import train  # deferred: torch and Lightning, after torchmetrics' lean import above

    apply_process_settings()
    return train


# --- log and warning filters, the NVML check (Lightning 2.6, torch 2.9) ----------------------------------------

def drop_a_failing_nvml_check() -> bool:
    """Unset PYTORCH_NVML_BASED_CUDA_CHECK where NVML cannot load; returns whether it did.

    Importing Lightning sets it to 1, so that `torch.cuda.is_available()` asks NVML (which cannot poison a fork)
    instead of initialising CUDA. AdamW asks at every step (its graph-capture check), and without an NVIDIA driver
    each ask is a failed dlopen of libnvidia-ml: 0.12 ms alone, 0.2 ms of each optimizer step, about 0.9 ms inside
    training. Without NVML the check can only fail over to CUDA's own count, which answers at once.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        return True
    return False


def _no_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def apply_process_settings() -> None:
    """What a process that trains wants, once Lightning is imported."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _no_tips not in rank_zero.filters:
        rank_zero.addFilter(_no_tips)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning vs torch 2.14
    # epoch-level values FusionModule logs come from torchmetrics' compute(), already reduced across DDP processes
    warnings.filterwarnings(
        "ignore", message=r".*It is recommended to use `self.log\('(train|val|test)/.*sync_dist=True.*"
    )
    drop_a_failing_nvml_check()


# --- torchmetrics without optional packages (torchmetrics 1.9, lightning_utilities 0.15) ------------------------
# torchmetrics 1.9 imports every metric domain when it is imported, and with them scipy.signal, torchvision,
# transformers and matplotlib wherever those are installed (Lightning-AI/torchmetrics#3457; Lightning imports
# torchmetrics too, to read its version). A training run uses none of them through torchmetrics. While torchmetrics
# is imported, lightning_utilities' availability checks (torchmetrics' only way to ask; no public switch exists)
# answer "not installed" for those packages; the answers are forgotten afterwards, so a later check sees the truth.
# What torchmetrics imported meanwhile lacks only metrics mmfuse does not use (BERTScore, CLIPScore, ARNIQA,
# detection IoUs, `Metric.plot`); importing `mmfuse.train` without it (a notebook, the tests) gets the full import.

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


# --- W&B without wandb.sdk.launch (wandb 0.23: Run._detect_and_apply_job_inputs is private) ----------------------

_launch_import_skipped = False


def skip_launch_import() -> None:
    """From now on, wandb.init skips importing wandb.sdk.launch (0.3-0.5 s on 2 cores) where it has nothing to do.

    wandb.init imports it to apply launch job inputs staged through it; inputs are staged only by code that
    imported that module (wandb.sdk.launch.manage_config_file and the like), so where nothing did, there is
    nothing to apply. A process-level setting: the command line applies it at start-up.
    """
    global _launch_import_skipped
    _launch_import_skipped = True
    if _patch_launch_inputs not in wandb_setup.BEFORE_START:
        wandb_setup.BEFORE_START.append(_patch_launch_inputs)
    if "wandb" in sys.modules:
        _patch_launch_inputs()


def _patch_launch_inputs() -> None:
    from wandb.sdk import wandb_run

    original = getattr(wandb_run.Run, "_detect_and_apply_job_inputs", None)
    if original is None or getattr(original, "mmfuse_staged_only", False):
        return

    def detect_and_apply_job_inputs(self) -> None:
        if "wandb.sdk.launch.inputs.internal" in sys.modules:
            original(self)

    detect_and_apply_job_inputs.mmfuse_staged_only = True
    wandb_run.Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs


def prewarm_wandb() -> None:
    """Import wandb and start its service process, which wandb.init would do first; creates no run."""
    try:
        import wandb

        if _launch_import_skipped:
            _patch_launch_inputs()
        wandb.setup()
    except Exception as e:  # noqa: BLE001 - the run's own start says what is wrong, or goes on without W&B
        log.debug("W&B not prewarmed: %s", e)


# --- exit without module teardown (CPython: threading._shutdown and atexit._run_exitfuncs are private) -------------
# With torch, Lightning and their dependencies loaded (about 4,000 modules) the interpreter's own finalisation takes
# seconds on a 2-core machine: every module's namespace cleared and every object freed, none of it writing anything.
# mypy exits the same way (`--fast-exit`). Everything that writes still runs first, in the interpreter's order:
# non-daemon threads joined and threading's exit hooks run (joblib's workers are shut down there), every `atexit`
# hook (logging flushes its files, W&B finishes its service), then the standard streams flushed.

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

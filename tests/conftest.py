"""Shared fixtures: configs composed with Hydra's compose API and shrunk to tiny sizes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from mmfuse.configs import compose_train, config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = config_dir()  # mmfuse's configs, found as `mmfuse train` finds them (the checkout's conf/, or MMFUSE_CONFIG_DIR)
SHARED_DATA = ROOT.parent / "shared" / "data"
TINY = [
    "data.n_samples=400",
    "data.batch_size=64",
    "trainer.max_epochs=1",
    "callbacks=minimal",
]

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MMFUSE_CHECK_RECORD", "1")  # every run.json written is checked against mmfuse/runs/schema.py

# CI (CI=true, which .ci/run sets) installs everything the suite needs: there, a missing prerequisite is a broken
# set-up that must fail the run, not a reason to test less
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(available: bool, what: str) -> None:
    """Skip the test when `what` is not available on this machine; fail it under CI."""
    if not available:
        if IN_CI:
            pytest.fail(f"{what} is missing under CI=true; .ci/run must provide it", pytrace=False)
        pytest.skip(f"needs {what}")


def require_module(name: str, what: str):
    """The module `name` (importorskip, but a failure under CI)."""
    try:
        return __import__("importlib").import_module(name)
    except ImportError:
        require(False, what)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data with the MNIST test split and the FSDD recordings (README: real data for tests); session-scoped,
    so that it is checked before any module fixture reads the files."""
    require((SHARED_DATA / "mnist").is_dir() and (SHARED_DATA / "fsdd").is_dir(),
            f"{SHARED_DATA} (MNIST test split and FSDD recordings)")
    return SHARED_DATA


def compose_config(overrides: list[str], run_dir: Path | None = None, tiny: bool = True, user_folders=()):
    """The train config as `mmfuse train` would compose it (`user_folders` searched first, as `--config-dir`),
    with run_dir pointed at a temp folder."""
    cfg = compose_train([*(TINY if tiny else []), *overrides], user_folders, return_hydra_config=True)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.paths.run_dir = str(run_dir)
            cfg.paths.output_dir = str(run_dir.parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # a task never sees the hydra node; HydraConfig holds it
    return cfg


@pytest.fixture
def cfg_factory(tmp_path):
    counter = iter(range(10_000))

    def make(*overrides: str, tiny: bool = True):
        return compose_config(list(overrides), tmp_path / f"run{next(counter)}", tiny=tiny)

    yield make
    GlobalHydra.instance().clear()


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`mmfuse ...` in a subprocess, as a user runs it."""
    full_env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mmfuse", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def lock_is_free(run_dir: Path) -> bool:
    """No process holds the run folder's lock (an OS file lock: the file itself may stay)."""
    from filelock import FileLock, Timeout

    lock = FileLock(Path(run_dir) / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True

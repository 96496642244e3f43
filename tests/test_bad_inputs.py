"""The bad-input catalogue, docs/ERRORS.md: every row's command through the real command line.

The test is parametrised over the catalogue itself: each error row's first cell holds one or more commands
(backticked, starting with `mmfuse`, optionally after `VAR=value` settings), the second cell the message (its first
backticked text; `...` and `<...>` stand for any text; a row with as many messages as commands pairs them in order).
A row without a command, or with a `<placeholder>` this file cannot make, fails.

Each command: a non-zero exit, the message on stderr, no Python traceback, nothing that was already in outputs/
changed, and nothing new in outputs/ but the failed run's own record (`mmfuse train`: a run folder holding only
.hydra/, run.json with the failure and its message, error.txt, train.log; other commands: nothing at all).

Commands run in this process through `mmfuse.cli.main` (the same argv parsing, messages and exit status as the
`mmfuse` console script, without a new interpreter's start-up); the first command of each kind of error (the
program and command that reports it: `mmfuse train [<run>]`, `mmfuse`, Hydra, `mmfuse compare`, ...) also runs in a
subprocess, which must answer the same exit status and error line.
"""
from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, require, run_cli

ERRORS = ROOT / "docs" / "ERRORS.md"
# keys each run is shrunk with unless its command sets them (they change no error)
QUICK = ["logger=none", "callbacks=minimal", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
SYNTHETIC_QUICK = ["data.n_samples=300"]
# the other tests' runs: small, and the last key is the one they drop to set it themselves
SMALL_RUN = ["logger=none", "callbacks=minimal", "data.n_samples=300", "data.modalities=[image,tabular]",
             "trainer.max_epochs=1"]
TRIGGER = re.compile(r"^(?:[A-Z_]+=(?:<[^>]+>|\S+) )*mmfuse \S")
PLACEHOLDER = re.compile(r"<[^>]+>")
RECORD_FILES = {".lock", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "run.json", "error.txt",
                "train.log"}


@dataclass
class Case:
    section: str
    row: str           # the row's first cell
    command: str       # one backticked command of it
    message: str | None  # the backticked message it must answer (None: the row gives none)


def cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def catalogue() -> tuple[list[Case], list[tuple[str, str]], list[str]]:
    """(error cases, (environment row, the test it names), rows that give no command)."""
    cases, tested_by, unrunnable = [], [], []
    section, header = "", None
    for line in ERRORS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section, header = line[3:].strip(), None
        elif line.startswith("|") and not set(line) <= set("|-: "):
            row = cells(line)
            if header is None:
                header = row
                continue
            if header[-1] == "tested by":
                tested_by.append((row[0], row[-1]))
                continue
            commands = [c for c in re.findall(r"`([^`]+)`", row[0]) if TRIGGER.match(c)]
            messages = re.findall(r"`([^`]+)`", row[1])
            if not commands:
                unrunnable.append(f"{section}: {row[0]}")
            for i, command in enumerate(commands):
                message = messages[i] if len(messages) == len(commands) > 1 else (messages[0] if messages else None)
                cases.append(Case(section, row[0], command, message))
    return cases, tested_by, unrunnable


CASES, TESTED_BY, UNRUNNABLE = catalogue()


def pattern(message: str) -> re.Pattern:
    """The catalogue's message as a regex: `...` and `<placeholder>` match any text, the rest literally."""
    parts = re.split(r"(\.\.\.|<[^>]+>)", message)
    return re.compile("".join(".*?" if p == "..." or PLACEHOLDER.fullmatch(p) else re.escape(p) for p in parts))


# ------------------------------------------------------------------ placeholders: what each <...> stands for

def hand_made_run(folder: Path, status: str, pid: int | None = None, checkpoint: bytes | None = None) -> Path:
    """A run folder as mmfuse leaves it, without training: record, config snapshot, optionally a checkpoint."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\npaths: {}\nfusion: {name: concat}\n")
    (folder / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (folder / ".hydra" / "overrides.yaml").write_text("[]\n")
    record = {"status": status, "run_name": "concat-s0", "config": {"seed": 0}, "metrics": {"test/acc": 0.9}}
    (folder / "run.json").write_text(json.dumps({**record, "pid": pid} if pid else record))
    if checkpoint is not None:
        (folder / "checkpoints").mkdir()
        for name in ("best.ckpt", "last.ckpt"):
            (folder / "checkpoints" / name).write_bytes(checkpoint)
    return folder


def manifest(folder: Path, name: str, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("text,label,split\n" + "".join(f"{r}\n" for r in rows))
    return folder / name


def fsdd_copy(folder: Path, truncate: str | None = None) -> Path:
    recordings = folder / "recordings"
    shutil.copytree(SHARED_DATA / "fsdd" / "recordings", recordings)
    if truncate:
        victim = recordings / truncate
        victim.write_bytes(victim.read_bytes()[:30])
    return folder


def mnist_with_truncated_idx(folder: Path) -> Path:
    shutil.copytree(SHARED_DATA / "mnist", folder)
    images = next(folder.glob("t10k-images-idx3-ubyte*"))
    import gzip

    raw = gzip.decompress(images.read_bytes()) if images.suffix == ".gz" else images.read_bytes()
    images.unlink()
    (folder / "t10k-images-idx3-ubyte").write_bytes(raw[: len(raw) // 2])
    return folder


def avmnist_with_30_pixel_images(folder: Path) -> Path:
    for sub in ("image", "audio"):
        (folder / sub).mkdir(parents=True)
    for split, n in (("train", 12), ("test", 6)):
        np.save(folder / "image" / f"{split}_data.npy", np.zeros((n, 30), dtype=np.uint8))
        np.save(folder / "audio" / f"{split}_data.npy", np.zeros((n, 112, 112), dtype=np.float32))
        np.save(folder / f"{split}_labels.npy", np.zeros(n, dtype=np.int64))
    return folder


def mmimdb_without_genres(folder: Path) -> Path:
    import h5py

    folder.mkdir(parents=True)
    with h5py.File(folder / "mmimdb.hdf5", "w") as f:
        f["features"] = np.zeros((10, 4), dtype=np.float32)
        f["vgg_features"] = np.zeros((10, 4), dtype=np.float32)
    return folder / "mmimdb.hdf5"


def unwritable_folder(folder: Path) -> Path:
    folder.mkdir(mode=0o500)
    return folder


def tiny_hf(folder: Path) -> Path:
    from test_pretrained import tiny_hf_model  # skipped without the [hf] extra, a failure under CI

    return tiny_hf_model(folder)


def a_file(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a_file.txt").write_text("not a folder")
    return folder / "a_file.txt"


HELD_LOCKS: list = []  # kept for the session: the folders stay locked by this (live) process


def locked_folder(folder: Path) -> Path:
    """A run folder whose OS lock this test's process holds, as a live run's process does."""
    from filelock import FileLock

    folder.mkdir(parents=True)
    lock = FileLock(folder / ".lock")
    lock.acquire(timeout=0)
    (folder / ".lock").write_text(str(os.getpid()))
    HELD_LOCKS.append(lock)
    return folder


def slot(d: Path, outputs: Path) -> Path:
    """A run folder in outputs/ named after the case's own placeholder folder `d` (unique per test)."""
    return outputs / "runs" / f"2026-01-01_00-00-00_{d.parent.name}_{d.name}"


# placeholder -> maker(fresh folder in the workspace, outputs/ of the workspace); run folders go into outputs/, so
# that the check of outputs/ covers them
PLACEHOLDERS = {
    "<empty folder>": lambda d, out: (d.mkdir() or d),
    "<a file>": lambda d, out: a_file(d),
    "<a folder this process cannot write to>": lambda d, out: unwritable_folder(d),
    "<a completed run>": lambda d, out: hand_made_run(slot(d, out), "completed"),
    "<a failed run>": lambda d, out: hand_made_run(slot(d, out), "failed"),
    "<a run locked by a live process>": lambda d, out: hand_made_run(slot(d, out), "running", pid=os.getpid(),
                                                                     checkpoint=b"x"),
    "<a run folder locked by a live process>": lambda d, out: locked_folder(slot(d, out)),
    "<a completed run with a corrupt checkpoint>": lambda d, out: hand_made_run(
        slot(d, out), "completed", checkpoint=b"not a checkpoint"),
    "<manifest whose training split lacks class c>": lambda d, out: manifest(
        d, "manifest.csv", [*(f"row {i},{'ab'[i % 2]},train" for i in range(8)), "x,a,val", "y,c,val", "z,c,test",
                            "w,b,test"]),
    "<manifest with numeric labels>": lambda d, out: manifest(
        d, "manifest.csv", [f"row {i},{i / 4},{('train', 'train', 'val', 'test')[i % 4]}" for i in range(16)]),
    "<manifest with an unknown label on line 3>": lambda d, out: manifest(
        d, "manifest.csv", ["hello,cat,train", "hi,bird,train", "yo,dog,val", "hey,cat,test"]),
    "<MNIST folder>": lambda d, out: SHARED_DATA / "mnist",
    "<FSDD folder>": lambda d, out: SHARED_DATA / "fsdd",
    "<FSDD folder with 4_lucas_33.wav truncated>": lambda d, out: fsdd_copy(d, truncate="4_lucas_33.wav"),
    "<MNIST folder with a truncated IDX file>": lambda d, out: mnist_with_truncated_idx(d),
    "<AV-MNIST folder with 30-pixel images>": lambda d, out: avmnist_with_30_pixel_images(d),
    "<MM-IMDb file without genres>": lambda d, out: mmimdb_without_genres(d),
    "<tiny Hugging Face model>": lambda d, out: tiny_hf(d),
}
NEEDS_SHARED_DATA = {"<MNIST folder>", "<FSDD folder>", "<FSDD folder with 4_lucas_33.wav truncated>",
                     "<MNIST folder with a truncated IDX file>"}


def drop_file_permission_override() -> None:
    """In a child process of root: give up the capabilities that let root write where the mode bits say no
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so that a folder of mode 0o500 is as unwritable as it is
    for any other user; the child keeps its uid, so it still reads the project and its venv."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from the bounding set, and so after exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folder the commands run in: outputs/ (paths.output_dir by default) already holds a finished run, which
    no failing command may touch; placeholders are made beside it."""
    root = tmp_path_factory.mktemp("workspace")
    hand_made_run(root / "outputs" / "runs" / "2026-01-01_00-00-00_000000_concat-s0", "completed",
                  checkpoint=b"weights")
    return root


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def in_process(argv: list[str], env: dict[str, str], cwd: Path, monkeypatch) -> tuple[int, str]:
    """`mmfuse <argv>` in this process, as console_main runs it: (exit status, stderr)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from mmfuse.cli import main
    from mmfuse.tracking import naming

    with monkeypatch.context() as m:
        m.chdir(cwd)
        for k, v in env.items():
            m.setenv(k, v)
        m.delenv(naming._ENV, raising=False)
        m.setattr(naming, "_STAMPS", {})  # folder names are chosen once per process; this is a new "process"
        m.setattr(sys, "argv", ["mmfuse", *argv])
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # as console_main: a string is said, and exits 1
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
        GlobalHydra.instance().clear()
    return code, err.getvalue()


def in_subprocess(argv: list[str], env: dict[str, str], cwd: Path, unprivileged: bool) -> tuple[int, str]:
    full_env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline", **env}
    done = subprocess.run([sys.executable, "-m", "mmfuse", *argv], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=full_env, preexec_fn=drop_file_permission_override if unprivileged else None)
    return done.returncode, done.stderr


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if ": error: " in line]
    return lines[-1] if lines else stderr.strip().splitlines()[0] if stderr.strip() else ""


def kind(stderr: str) -> str:
    """Who reported the error: the part of its line before 'error:', run folders left out; Hydra's own errors."""
    line = error_line(stderr)
    return re.sub(r" \[.*\]", " [<run>]", line.split(": error: ")[0]) if ": error: " in line else "hydra"


SUBPROCESS_KINDS: set[str] = set()  # kinds already run in a subprocess in this session


def test_every_row_of_the_catalogue_has_a_command():
    assert CASES and not UNRUNNABLE, f"rows of {ERRORS.name} without a runnable `mmfuse ...` command: {UNRUNNABLE}"
    assert {c.section for c in CASES} == {"Configuration", "Models", "Data", "Runs and outputs"}
    unknown = {p for c in CASES for p in PLACEHOLDER.findall(c.command)} - set(PLACEHOLDERS)
    assert not unknown, f"placeholders this test cannot make: {unknown}"
    assert all(c.message for c in CASES), [c.row for c in CASES if not c.message]


@pytest.mark.parametrize("row, test", TESTED_BY, ids=[r for r, _ in TESTED_BY])
def test_environment_rows_name_a_test_that_exists(row, test):
    path, name = test.strip("`").split("::")
    assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), f"{row}: no test {test}"


def failed_run_folders(outputs: Path, new: list[str]) -> dict[Path, set[str]]:
    """The new files under outputs/ grouped by run folder (runs/<run>/ or sweeps/<sweep>/<job>/)."""
    folders: dict[Path, set[str]] = {}
    for f in new:
        parts = Path(f).parts
        if parts[0] == "sweeps" and len(parts) == 3:
            assert parts[2] == "multirun.yaml", f"unexpected file in a sweep folder: {f}"
            continue
        top = 2 if parts[0] == "runs" else 3
        folders.setdefault(Path(*parts[:top]), set()).add(str(Path(*parts[top:])))
    return folders


@pytest.mark.parametrize("case", CASES, ids=[c.command for c in CASES])
def test_catalogued_error(case, workspace, tmp_path, monkeypatch):
    outputs = workspace / "outputs"
    used = PLACEHOLDER.findall(case.command)
    if set(used) & NEEDS_SHARED_DATA:
        require((SHARED_DATA / "mnist").is_dir() and (SHARED_DATA / "fsdd").is_dir(), f"{SHARED_DATA}")
    command, made = case.command, {}
    for i, name in enumerate(used):
        made[name] = PLACEHOLDERS[name](tmp_path / f"p{i}", outputs)
        command = command.replace(name, str(made[name]), 1)
    words = command.split()
    env = dict(w.split("=", 1) for w in words[: words.index("mmfuse")])
    argv = words[words.index("mmfuse") + 1:]
    trains = argv[0] == "train" and not any(a.startswith("resume=") for a in argv)
    if trains:
        keys = {a.split("=")[0].lstrip("+~") for a in argv[1:]}
        synthetic = not any(a.startswith("data=") and a != "data=synthetic" for a in argv)
        argv += [q for q in QUICK + (SYNTHETIC_QUICK if synthetic else []) if q.split("=")[0] not in keys]
    unprivileged = "<a folder this process cannot write to>" in made
    if unprivileged:
        # a real unwritable folder (mode 0o500); as root, mode bits stop no write, so the command runs without root's
        # override of them (drop_file_permission_override). A child set up the same way must be refused first.
        probe = subprocess.run([sys.executable, "-c", "import os, sys; os.mkdir(os.path.join(sys.argv[1], 'probe'))",
                                str(made["<a folder this process cannot write to>"])], capture_output=True, text=True,
                               preexec_fn=drop_file_permission_override if os.geteuid() == 0 else None)
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    before = snapshot(outputs)

    if unprivileged:
        code, stderr = in_subprocess(argv, env, workspace, unprivileged=os.geteuid() == 0)
    else:
        code, stderr = in_process(argv, env, workspace, monkeypatch)
    assert code != 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert pattern(case.message).search(stderr), f"{case.message!r} not in:\n{stderr[-2000:]}"
    who = kind(stderr)
    if who not in SUBPROCESS_KINDS and not unprivileged:  # the first of its kind: the same through `python -m mmfuse`
        sub_code, sub_stderr = in_subprocess(argv, env, workspace, unprivileged=False)
        SUBPROCESS_KINDS.add(who)
        assert (sub_code, kind(sub_stderr)) == (code, who), sub_stderr[-2000:]
        assert pattern(case.message).search(sub_stderr), sub_stderr[-2000:]

    after = snapshot(outputs)
    assert {k: after.get(k) for k in before} == before, "files that were in outputs/ changed"
    new = sorted(set(after) - set(before))
    if not trains:
        assert not new, f"mmfuse {argv[0]} wrote into outputs/: {new}"
        return
    folders = failed_run_folders(outputs, new)
    for folder, files in folders.items():
        assert files <= RECORD_FILES and "run.json" in files, f"{folder} holds more than a failed run's record: {files}"
        record = json.loads((outputs / folder / "run.json").read_text())
        assert record["status"] in ("failed", "diverged"), record["status"]
        if "job(s) failed" not in case.message:  # a sweep's message is its summary line; each job has its own
            assert pattern(case.message).search(record["error"]["message"]), record["error"]
    for folder in folders:  # checked: out of the next case's way
        shutil.rmtree(outputs / folder)
    shutil.rmtree(outputs / "sweeps", ignore_errors=True)


def test_verbose_shows_the_traceback(tmp_path):
    result = run_cli("train", "--verbose", "trainer.max_epochs=0", f"paths.output_dir={tmp_path}", *SMALL_RUN[:-1])
    assert result.returncode == 1 and "Traceback" in result.stderr and "trainer.max_epochs=0" in result.stderr


def test_wandb_failure_never_takes_a_run_down(tmp_path):
    result = run_cli("train", f"paths.output_dir={tmp_path}", "logger=wandb", "logger.wandb.mode=bogus",
                     *[q for q in SMALL_RUN if q != "logger=none"])
    assert result.returncode == 0, result.stderr[-1500:]
    (record,) = [json.loads(p.read_text()) for p in tmp_path.rglob("run.json")]
    assert record["status"] == "completed" and record["wandb"]["status"] == "disabled" and record["wandb"]["reason"]


def test_sweep_goes_on_after_failures_and_fail_fast_stops_it(tmp_path):
    args = ["train", "-m", "fusion=concat,tensor,late", "data.modalities=[tabular]", "data.interaction=redundant",
            "logger=none", "callbacks=minimal", "data.n_samples=300", "trainer.max_epochs=1"]
    on = run_cli(*args, f"paths.output_dir={tmp_path / 'a'}")
    assert on.returncode == 1 and "1 job(s) failed" in on.stderr
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "a").rglob("run.json"))
    assert statuses == ["completed", "completed", "failed"]
    stop = run_cli(*args, f"paths.output_dir={tmp_path / 'b'}", "sweep.fail_fast=true")
    assert stop.returncode == 1
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "b").rglob("run.json"))
    assert statuses == ["completed", "failed"]  # the job after the failure never ran


def test_two_sweeps_launched_together_never_share_a_folder(tmp_path):
    args = [sys.executable, "-m", "mmfuse", "train", "-m", "seed=0", f"paths.output_dir={tmp_path}", *SMALL_RUN]
    env = {**os.environ, "WANDB_MODE": "offline"}
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    sweeps = sorted((tmp_path / "sweeps").iterdir())
    assert len(sweeps) == 2 and all(len(list(s.rglob("run.json"))) == 1 for s in sweeps)

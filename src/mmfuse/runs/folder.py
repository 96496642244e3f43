"""A run folder: its layout, and the only code that reads or writes its run.json.

    <run_dir>/run.json             the record (mmfuse/runs/schema.py; docs/RUN_RECORD.md)
    <run_dir>/.hydra/config.yaml   the config snapshot reproduce and resume rebuild the run from
    <run_dir>/checkpoints/         best.ckpt (the monitored metric's best epoch), last.ckpt (the latest, for resume)
    <run_dir>/error.txt            the traceback of a failed run
    <run_dir>/eval/, export/       `mmfuse eval` and `mmfuse export` results
    <run_dir>/.lock                held (an OS file lock) by the process writing the record

The training process holds the lock for the run's life; `mmfuse eval`, `export` and `reproduce` take it for one
read-modify-write (`RunFolder.editing`). The lock is the operating system's (filelock), so a killed process
leaves no stale lock to take over.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from mmfuse.errors import UserError
from mmfuse.runs import schema

RECORD = "run.json"
SNAPSHOT = Path(".hydra") / "config.yaml"
LOCK = ".lock"
# another command's read-modify-write takes milliseconds; a run in training holds the lock until it ends
EDIT_WAIT_SECONDS = 30.0


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target: readers see old or new."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_record(run_dir: Path) -> dict[str, Any]:
    """run.json of `run_dir`; a clear error for a missing, corrupt or newer-versioned record."""
    path = Path(run_dir) / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no run record here; is {run_dir} a run folder?") from None
    except OSError as e:
        raise ValueError(f"{path} unreadable: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is corrupt (a {type(record).__name__}, not an object)")
    if schema.version(record) > schema.SCHEMA_VERSION:
        raise UserError(f"{path}: written by a newer mmfuse (schema_version {schema.version(record)}; this mmfuse "
                        f"reads up to {schema.SCHEMA_VERSION}); upgrade mmfuse to read it")
    return record


class RunFolder:
    """One run folder: where its files are, and its record, written only through here."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.record_path = self.run_dir / RECORD
        self.snapshot = self.run_dir / SNAPSHOT
        self.checkpoints = self.run_dir / "checkpoints"
        self.best_ckpt = self.checkpoints / "best.ckpt"
        self.last_ckpt = self.checkpoints / "last.ckpt"
        self.error_txt = self.run_dir / "error.txt"
        self.eval_dir = self.run_dir / "eval"
        self.export_dir = self.run_dir / "export"
        self.data: dict[str, Any] = {}
        self._lock = FileLock(self.run_dir / LOCK)

    # spawn-style DDP pickles the callbacks that hold the folder: a child gets the folder without the parent's lock
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = FileLock(self.run_dir / LOCK)

    def write_file(self, path: Path, data: Any) -> None:
        """A JSON file of this run folder other than the record (eval results), written atomically."""
        write_json_atomic(path, data)

    def exists(self) -> bool:
        return self.record_path.is_file()

    def read(self) -> dict[str, Any]:
        return read_record(self.run_dir)

    # --- the training process: the folder's writer for the run's life -------------------------------------------
    def acquire(self, resume: bool = False) -> None:
        """Take the folder for a new run (it must hold none) or, `resume`, for an unfinished run whose process is
        gone (its record is kept). Refuses a folder another live process writes."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            existing = self.read()
            if existing.get("status") == "completed":
                raise ValueError(f"{self.record_path}: the run is already completed; nothing to resume")
            if existing.get("status") == "running" and pid_alive(existing.get("pid")):
                raise RuntimeError(f"{self.run_dir} is still being trained by process {existing.get('pid')}")
            self.data = existing
        elif self.exists():
            raise FileExistsError(
                f"{self.record_path} exists: this folder already holds a run; runs are never overwritten"
            )
        self._take_lock(timeout=0)

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def start(self, **fields: Any) -> None:
        self.data = {
            "schema_version": schema.SCHEMA_VERSION,
            "status": "running",
            "run_dir": str(self.run_dir.resolve()),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **fields,
        }
        self.save()

    def resume(self) -> None:
        """Take over the acquired record of an interrupted run: running again, by this process."""
        resumes = [
            *self.data.get("resumed", []),
            {"at": dt.datetime.now().isoformat(timespec="seconds"), "previous_status": self.data.get("status")},
        ]
        self.update(status="running", pid=os.getpid(), host=socket.gethostname(), resumed=resumes)

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        if os.environ.get("MMFUSE_CHECK_RECORD"):  # the test suite sets it: every record written is checked
            found = schema.problems(self.data)
            if found:
                raise AssertionError(f"{self.record_path} does not follow mmfuse/runs/schema.py: {found}")
        write_json_atomic(self.record_path, self.data)

    # --- any other command: one read-modify-write under the lock -------------------------------------------------
    @contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The current record to change in place; written back, under the lock, when the block ends."""
        self._take_lock(timeout=EDIT_WAIT_SECONDS)
        try:
            self.data = self.read()
            yield self.data
            self.save()
        finally:
            self.release()

    def writer(self) -> int | None:
        """The pid of a live process holding this folder's lock (0 if unknown), or None when it is free."""
        if not (self.run_dir / LOCK).exists():
            return None
        try:
            self._take_lock(timeout=0)
        except RuntimeError:
            try:
                return int((self.run_dir / LOCK).read_text().strip() or 0)
            except (OSError, ValueError):
                return 0
        self.release()
        return None

    def _take_lock(self, timeout: float) -> None:
        lock = self.run_dir / LOCK
        try:
            holder = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):  # read first: a process waiting for the lock empties the file
            holder = 0
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            raise RuntimeError(
                f"{self.run_dir} is being written by process {holder or 'unknown'} (lock {lock})"
            ) from None
        lock.write_text(str(os.getpid()))

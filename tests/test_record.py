"""run.json is replaced atomically: a reader, or a process that starts after a kill, sees a whole record."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmfuse.runs.folder import write_json_atomic

HISTORY = 10_000  # epochs in the record: a write takes about 0.25 s on these machines
# a writer that never stops: records "a" and "b" in turn, each about 1.4 MB, so that it spends nearly all of its time
# in the middle of a write; it prints how many it finished
WRITER = f"""
import sys
from mmfuse.runs.folder import write_json_atomic
history = [{{"epoch": i, "step": 10 * i, "val/acc": i / 7, "train/loss_epoch": 1 / (i + 1)}} for i in range({HISTORY})]
n = 0
while True:
    write_json_atomic(sys.argv[1], {{"status": "running", "tag": "ab"[n % 2], "history": history}})
    n += 1
    print(n, flush=True)
"""


def whole(path: Path) -> str:
    """The record's tag; json.loads raises on a torn record (never swallowed: that is what this file tests)."""
    record = json.loads(path.read_text())
    assert len(record["history"]) == HISTORY
    return record["tag"]


def test_a_reader_and_a_kill_during_large_writes_see_a_whole_record(tmp_path):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"status": "running", "tag": "old", "history": [{}] * HISTORY})
    kills = [(2, 0.05), (3, 0.1), (4, 0.15)]  # (writes to finish, seconds into the next one)
    for finished, delay in kills:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        for n in range(1, finished + 1):
            assert writer.stdout.readline().strip() == str(n)
            assert whole(path) in "ab"  # read while the writer is on to its next record
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert whole(path) in "ab"  # what a resumed run or `mmfuse compare` reads after the kill
    # each kill came mid-write: it left its temp file behind (a kill runs no cleanup), never in place of the record
    temps = [p for p in tmp_path.iterdir() if p.name != "run.json"]
    assert len(temps) == len(kills) and all(p.name.startswith(".run.json.") and p.suffix == ".tmp" for p in temps)


class Unserialisable:
    def __str__(self):  # write_json_atomic writes unknown values as str(); this one refuses
        raise TypeError("cannot be written")


def test_a_failed_write_keeps_the_previous_record_and_no_temp_file(tmp_path):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"status": "running"})
    with pytest.raises(TypeError, match="cannot be written"):
        write_json_atomic(path, {"status": "completed", "bad": Unserialisable()})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]

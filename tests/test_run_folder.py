"""The run folder's owner: run.json follows its schema, a newer record is refused, every edit holds the lock."""
from __future__ import annotations

import json

import pytest

from mmfuse.errors import UserError
from mmfuse.runs import schema
from mmfuse.runs.folder import RunFolder, read_record


def test_a_record_of_a_newer_schema_is_refused_by_name(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION + 1, "status": "completed"}))
    with pytest.raises(UserError, match=rf"written by a newer mmfuse \(schema_version {schema.SCHEMA_VERSION + 1}; "
                                        rf"this mmfuse reads up to {schema.SCHEMA_VERSION}\)"):
        read_record(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"schema": 1, "status": "completed"}))  # version 1's name
    assert read_record(tmp_path)["status"] == "completed"


def test_the_schema_check_names_unknown_keys_wrong_types_and_statuses():
    assert schema.problems({"schema_version": 2, "status": "completed", "metrics": {"test/acc": 0.5},
                            "timing": {"fit_seconds": 3, "first_step_at": None}}) == []
    found = schema.problems({"status": "done", "metrics": [], "timing": {"fit_second": 1.0}, "colour": "red"})
    assert found == ["metrics: list, expected dict[str, float]", "colour: not a field of the run record",
                     "timing.fit_second: not a field of the run record",
                     "status: 'done', expected one of ['running', 'completed', 'failed', 'interrupted', 'diverged']"]


def test_a_checked_write_refuses_a_record_off_the_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFUSE_CHECK_RECORD", "1")
    folder = RunFolder(tmp_path / "run")
    folder.acquire()
    try:
        with pytest.raises(AssertionError, match="colour: not a field of the run record"):
            folder.start(colour="red")
    finally:
        folder.release()


def test_an_edit_waits_for_the_writer_and_a_live_writer_refuses_a_second(tmp_path, monkeypatch):
    """The lock is the operating system's (one per open file): held, a second writer is refused and an edit gives
    up after its wait; released, both go through."""
    monkeypatch.setattr("mmfuse.runs.folder.EDIT_WAIT_SECONDS", 0.5)
    run = tmp_path / "run"
    writer = RunFolder(run)
    writer.acquire()
    # this process holds the lock: another RunFolder (another file descriptor) is refused at once
    with pytest.raises(RuntimeError, match="is being written by process"):
        RunFolder(run).acquire()
    writer.start(metrics={})
    with pytest.raises(RuntimeError, match="is being written by process"):
        with RunFolder(run).editing() as record:
            record["evals"] = []
    assert RunFolder(run).writer() is not None
    writer.release()
    assert RunFolder(run).writer() is None
    with RunFolder(run).editing() as record:
        record.setdefault("evals", []).append({"ckpt": "best"})
    assert read_record(run)["evals"] == [{"ckpt": "best"}]

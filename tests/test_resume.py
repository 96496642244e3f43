"""`mmfuse train resume=RUN_DIR`: a run killed with SIGKILL and resumed ends where an uninterrupted run ends."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, run_cli

from mmfuse.cli import reproduce, resume
from mmfuse.lifecycle.resume import checkpoint_epoch

EPOCHS = 3
SLOW = ["data.n_samples=2000", "data.modalities=[image,tabular]", f"trainer.max_epochs={EPOCHS}", "callbacks=minimal",
        "logger=csv", "trainer.enable_progress_bar=false", "model.optimizer.lr=0.01"]


def csv_values(path: Path) -> set[tuple[str, str, str]]:
    """(step, column, value) of every filled cell of a metrics.csv."""
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {(row["step"], k, v) for row in csv.DictReader(f) for k, v in row.items() if v and k != "step"}


def test_sigkilled_run_resumes_to_the_uninterrupted_metrics(tmp_path, capsys):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "mmfuse", "train", "fusion=concat", f"paths.output_dir={tmp_path}", *SLOW],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob("runs/*/run.json"))
        if found and (found[0].parent / "checkpoints" / "last.ckpt").is_file():
            # run.json is replaced atomically: a read sees the old or the new record, never a torn one
            if len(json.loads(found[0].read_text()).get("history") or []) >= 1:
                record = found[0]
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make SLOW slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = record.parent
    # the kill came mid-training: the resume has whole epochs left to train
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt") < EPOCHS - 1
    killed = json.loads(record.read_text())
    assert killed["status"] == "running" and killed["metrics"] == {}
    logged_before = csv_values(run_dir / "csv" / "metrics.csv")
    assert logged_before, "epoch 0's metrics were not in metrics.csv when the run was killed"

    assert resume.main([f"resume={run_dir}"]) == 0
    assert logged_before <= csv_values(run_dir / "csv" / "metrics.csv")  # the resumed run kept them
    done = json.loads(record.read_text())
    assert done["status"] == "completed" and done["resumed"][0]["previous_status"] == "running"
    assert [row["epoch"] for row in done["history"]] == list(range(EPOCHS))
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the same folder, no new run
    # an uninterrupted run of the same config: every metric equal
    capsys.readouterr()
    assert reproduce.main([str(run_dir)]) == 0, capsys.readouterr().out
    assert "REPRODUCED (exact" in capsys.readouterr().out


def test_run_killed_after_its_final_checkpoint_resumes_with_every_metric(tmp_path, capsys):
    """Killed between the last epoch's checkpoint and the end of the run (testing, robustness): the resume trains
    nothing more, and the record still holds the final epoch's train/val metrics, equal to an uninterrupted run's."""
    done = run_cli("train", "fusion=concat", "data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=2",
                   "callbacks=minimal", "logger=csv", "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    [run_dir] = [p.parent for p in tmp_path.glob("runs/*/run.json")]
    complete = json.loads((run_dir / "run.json").read_text())
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt") == 1  # the final epoch's
    # what a SIGKILL during testing leaves: a running record of a dead process, no final metrics
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / "run.json").write_text(json.dumps({**complete, "status": "running", "metrics": {}, "pid": int(dead.stdout)}))

    assert resume.main([f"resume={run_dir}"]) == 0
    done = json.loads((run_dir / "run.json").read_text())
    assert done["status"] == "completed"
    assert {k for k in complete["metrics"] if k.startswith(("train/", "val/"))} <= set(done["metrics"])
    assert done["metrics"] == complete["metrics"]


def test_resume_refuses_completed_live_and_checkpointless_runs(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    cases = [({"status": "completed"}, "already completed"),
             ({"status": "running", "pid": os.getpid()}, "still being trained by process"),
             ({"status": "failed"}, "no checkpoints/last.ckpt")]
    for rec, expected in cases:
        (run / "run.json").write_text(json.dumps(rec))
        assert resume.main([f"resume={run}"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, err
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    assert resume.main([f"resume={run}"]) == 2 and "corrupt" in capsys.readouterr().err
    assert resume.main([f"resume={tmp_path / 'none'}"]) == 2 and "no such folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "checkpoints", "run.json"]

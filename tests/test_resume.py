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
# trainer.log_every_n_steps=5: step rows reach metrics.csv during an epoch, so the killed run has logged rows past its
# last checkpoint, which the resumed run logs again
SLOW = ["data.n_samples=2000", "data.modalities=[image,tabular]", f"trainer.max_epochs={EPOCHS}", "callbacks=minimal",
        "logger=csv", "trainer.enable_progress_bar=false", "model.optimizer.lr=0.01", "trainer.log_every_n_steps=5"]


def csv_rows(path: Path) -> list[tuple]:
    """Every row of a metrics.csv as (epoch, step, its filled cells), sorted: equal lists mean equal logs, duplicated
    rows included."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return sorted((row["epoch"], int(row["step"]), tuple(sorted((k, v) for k, v in row.items() if v)))
                      for row in csv.DictReader(f))


def kill_past_a_checkpoint(proc: subprocess.Popen, run_root: Path, timeout: float = 120) -> tuple[Path, int, list]:
    """SIGKILL the run once it has logged rows of an epoch after its last.ckpt's, before its final epoch.

    The run is stopped (SIGSTOP) while the condition is checked, so that what is checked is what the kill leaves:
    the checkpoint's epoch and the CSV rows. Returns the run folder, that epoch and the rows.
    """
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        found = list(run_root.glob("runs/*/checkpoints/last.ckpt"))
        if not found:
            continue
        run_dir = found[0].parents[1]
        proc.send_signal(signal.SIGSTOP)
        epoch = checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt")
        rows = csv_rows(run_dir / "csv" / "metrics.csv")
        if epoch < EPOCHS - 1 and any(int(row[0]) > epoch for row in rows):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return run_dir, epoch, rows
        proc.send_signal(signal.SIGCONT)
    raise AssertionError("the run ended before it could be killed past a checkpoint; make SLOW slower")


def test_sigkilled_run_resumes_to_the_uninterrupted_metrics_and_log(tmp_path, capsys):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "mmfuse", "train", "fusion=concat", f"paths.output_dir={tmp_path}", *SLOW],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir, epoch, logged_before = kill_past_a_checkpoint(proc, tmp_path)
    # the kill came mid-training, after the checkpoint of `epoch` and rows of the epoch after it: the resume has
    # whole epochs left to train and rows to log again
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt") == epoch < EPOCHS - 1
    killed = json.loads((run_dir / "run.json").read_text())
    assert killed["status"] == "running" and killed["metrics"] == {}
    assert [row["epoch"] for row in killed["history"]] == list(range(epoch + 1))

    assert resume.main([f"resume={run_dir}"]) == 0
    done = json.loads((run_dir / "run.json").read_text())
    assert done["status"] == "completed" and done["resumed"][0]["previous_status"] == "running"
    assert [row["epoch"] for row in done["history"]] == list(range(EPOCHS))
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the same folder, no new run
    resumed_log = csv_rows(run_dir / "csv" / "metrics.csv")
    assert [row for row in logged_before if int(row[0]) <= epoch] == [row for row in resumed_log if int(row[0]) <= epoch]
    # an uninterrupted run of the same config: every metric equal, and its metrics.csv row for row the same
    capsys.readouterr()
    assert reproduce.main([str(run_dir)]) == 0, capsys.readouterr().out
    assert "REPRODUCED (exact" in capsys.readouterr().out
    (uninterrupted,) = tmp_path.glob("reproductions/*/csv/metrics.csv")
    assert resumed_log == csv_rows(uninterrupted)  # no row twice, none missing


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

    complete_log = csv_rows(run_dir / "csv" / "metrics.csv")
    assert any(int(row[0]) == 2 for row in complete_log)  # the test row, logged after the final checkpoint (epoch 1)

    assert resume.main([f"resume={run_dir}"]) == 0
    done = json.loads((run_dir / "run.json").read_text())
    assert done["status"] == "completed"
    assert {k for k in complete["metrics"] if k.startswith(("train/", "val/"))} <= set(done["metrics"])
    assert done["metrics"] == complete["metrics"]
    assert csv_rows(run_dir / "csv" / "metrics.csv") == complete_log  # tested again, its row logged once


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

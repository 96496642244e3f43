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

import pytest

from conftest import ROOT, run_cli
from mmfuse.cli import reproduce, resume
from mmfuse.lifecycle.resume import checkpoint_epoch, cut_metrics_csv
from mmfuse.tracking.wandb_offline import read_offline_run

EPOCHS = 3
# trainer.log_every_n_steps=5: step rows reach metrics.csv during an epoch, so the killed run has logged rows past its
# last checkpoint, which the resumed run logs again
SLOW = ["data.n_samples=2000", "data.modalities=[image,tabular]", f"trainer.max_epochs={EPOCHS}", "callbacks=minimal",
        "logger=csv", "trainer.enable_progress_bar=false", "model.optimizer.lr=0.01", "trainer.log_every_n_steps=5"]


TWO_EPOCHS = ["data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=2", "callbacks=minimal",
              "logger=csv", "trainer.enable_progress_bar=false"]


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmfuse", "train", "fusion=concat", f"paths.output_dir={tmp_path}", *SLOW],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    kept = [row for row in resumed_log if int(row[0]) <= epoch]
    assert [row for row in logged_before if int(row[0]) <= epoch] == kept
    # an uninterrupted run of the same config: every metric equal, and its metrics.csv row for row the same
    capsys.readouterr()
    assert reproduce.main([str(run_dir)]) == 0, capsys.readouterr().out
    assert "REPRODUCED (exact" in capsys.readouterr().out
    (uninterrupted,) = tmp_path.glob("reproductions/*/csv/metrics.csv")
    assert resumed_log == csv_rows(uninterrupted)  # no row twice, none missing


def as_killed_after_its_final_checkpoint(run_dir: Path) -> dict:
    """Make a completed run look as a SIGKILL during testing leaves it: a running record of a dead process, no final
    metrics; returns the completed record."""
    complete = json.loads((run_dir / "run.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = {**complete, "status": "running", "metrics": {}, "pid": int(dead.stdout)}
    (run_dir / "run.json").write_text(json.dumps(killed))
    return complete


def test_run_killed_after_its_final_checkpoint_resumes_with_every_metric(tmp_path, capsys):
    """Killed between the last epoch's checkpoint and the end of the run (testing, robustness): the resume trains
    nothing more, and the record still holds the final epoch's train/val metrics, equal to an uninterrupted run's."""
    done = run_cli("train", "fusion=concat", *TWO_EPOCHS, f"paths.output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    [run_dir] = [p.parent for p in tmp_path.glob("runs/*/run.json")]
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt") == 1  # the final epoch's
    complete_log = csv_rows(run_dir / "csv" / "metrics.csv")
    assert any(int(row[0]) == 2 for row in complete_log)  # the test row, logged after the final checkpoint (epoch 1)
    complete = as_killed_after_its_final_checkpoint(run_dir)

    assert resume.main([f"resume={run_dir}"]) == 0
    done = json.loads((run_dir / "run.json").read_text())
    assert done["status"] == "completed"
    assert {k for k in complete["metrics"] if k.startswith(("train/", "val/"))} <= set(done["metrics"])
    assert done["metrics"] == complete["metrics"]
    assert csv_rows(run_dir / "csv" / "metrics.csv") == complete_log  # tested again, its row logged once


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_sweep_folder_resumes_its_unfinished_jobs_and_leaves_the_completed_ones(tmp_path, capsys):
    done = run_cli("train", "-m", "fusion=concat,late", *TWO_EPOCHS, f"paths.output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    (sweep,) = (tmp_path / "sweeps").iterdir()
    killed, finished = sorted(p.parent for p in sweep.glob("*/run.json"))
    complete_log = csv_rows(killed / "csv" / "metrics.csv")
    complete = as_killed_after_its_final_checkpoint(killed)
    untouched = files_of(finished)

    assert resume.main([f"resume={sweep}"]) == 0
    err = capsys.readouterr().err
    assert f"skipping {finished.name}: {finished}: the run is already completed" in err
    resumed = json.loads((killed / "run.json").read_text())
    assert resumed["status"] == "completed" and resumed["metrics"] == complete["metrics"]
    assert resumed["resumed"][0]["previous_status"] == "running"
    assert csv_rows(killed / "csv" / "metrics.csv") == complete_log
    assert files_of(finished) == untouched
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == sorted([killed.name, finished.name])


def test_a_resumed_run_continues_its_wandb_run(tmp_path):
    """The resumed run logs to the W&B run the killed one started: the same id in run.json and in both offline run
    folders (W&B writes one folder per process), and the resumed one holds the final test metrics."""
    done = run_cli(
        "train",
        "fusion=concat",
        *[o for o in TWO_EPOCHS if o != "logger=csv"],
        "logger=many",
        f"paths.output_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [run_dir] = [p.parent for p in tmp_path.glob("runs/*/run.json")]
    complete = as_killed_after_its_final_checkpoint(run_dir)
    run_id = complete["wandb"]["id"]
    assert complete["wandb"]["status"] == "ok" and run_id

    assert resume.main([f"resume={run_dir}"]) == 0
    resumed = json.loads((run_dir / "run.json").read_text())
    assert resumed["status"] == "completed" and resumed["wandb"]["status"] == "ok" and resumed["wandb"]["id"] == run_id
    folders = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith(f"-{run_id}") for f in folders)
    runs = [read_offline_run(f) for f in folders]
    assert [r["id"] for r in runs] == [run_id, run_id] and [r["name"] for r in runs] == ["concat-s0", "concat-s0"]
    assert runs[1]["summary"]["test/acc"] == pytest.approx(resumed["metrics"]["test/acc"], rel=1e-6)


def test_metrics_csv_is_cut_back_to_the_checkpoint(tmp_path):
    """Checkpoint of epoch 1 at step 4: rows of epochs 0-1 stay, epoch 2's go; a row without an epoch (the learning
    rate monitor's) stays before step 4 only; the last line, cut short by the kill, goes; kept lines keep their text."""
    path = tmp_path / "metrics.csv"
    kept = [
        "epoch,step,lr-AdamW,train/loss_step,val/acc\r\n",
        ",0,0.001,,\r\n",
        "0,1,,0.912345678,\r\n",
        "0,1,,,0.5\r\n",
        ",2,0.002,,\r\n",
        "1,3,,0.75,0.6\r\n",
    ]
    dropped = [",4,0.003,,\r\n", "2,5,,0.5,\r\n"]
    path.write_text("".join(kept + dropped) + "2,7,,0.4", encoding="utf-8", newline="")
    assert cut_metrics_csv(path, epoch=1, step=4) == 3
    with open(path, encoding="utf-8", newline="") as f:
        assert f.read() == "".join(kept)
    assert cut_metrics_csv(path, epoch=1, step=4) == 0 and cut_metrics_csv(tmp_path / "none.csv", 0, 0) == 0


def test_resume_refuses_completed_live_and_checkpointless_runs(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    cases = [
        ({"status": "completed"}, "already completed"),
        ({"status": "running", "pid": os.getpid()}, "still being trained by process"),
        ({"status": "failed"}, "no checkpoints/last.ckpt"),
    ]
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

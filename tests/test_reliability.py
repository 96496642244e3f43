"""Sweeps survive failing and diverging jobs; Ctrl-C and concurrent writers leave every record sound."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, lock_is_free, run_cli
from mmfuse.runs.folder import RunFolder

TINY = ["logger=none", "callbacks=minimal", "data.n_samples=300", "data.modalities=[tabular]",
        "data.interaction=redundant", "evaluation.robustness=false", "model.optimizer._target_=torch.optim.SGD",
        "model.optimizer.weight_decay=0", "trainer.gradient_clip_val=null"]


def test_a_sweep_with_a_raising_and_a_diverging_job_finishes_the_others(tmp_path):
    result = run_cli("train", "-m", "model.optimizer.lr=0.01,0.02,1e30,-1", f"paths.output_dir={tmp_path}", *TINY,
                     "trainer.max_epochs=2")
    assert result.returncode == 1
    assert "2 job(s) failed" in result.stderr and "Traceback" not in result.stderr
    recs = {
        r["config"]["model"]["optimizer"]["lr"]: r
        for r in map(lambda p: json.loads(p.read_text()), tmp_path.rglob("run.json"))
    }
    assert [recs[0.01]["status"], recs[0.02]["status"], recs[1e30]["status"], recs[-1]["status"]] == [
        "completed",
        "completed",
        "diverged",
        "failed",
    ]
    assert recs[1e30]["error"]["step"] >= 0 and "model.optimizer.lr=-1" in recs[-1]["error"]["message"]
    (sweep,) = (tmp_path / "sweeps").iterdir()
    report = run_cli("compare", str(sweep))
    assert report.returncode == 0
    assert "diverged" in report.stdout and "failed" in report.stdout


def test_ctrl_c_stops_gracefully_saves_last_ckpt_and_marks_the_run_interrupted(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [
        sys.executable,
        "-m",
        "mmfuse",
        "train",
        f"paths.output_dir={tmp_path}",
        "logger=none",
        "callbacks=minimal",
        "data.n_samples=4000",
        "trainer.max_epochs=200",
        "evaluation.robustness=false",
        "trainer.enable_progress_bar=false",
    ]
    # stderr to a file, not a pipe nobody reads while waiting: the child can never block writing it, and a failure
    # below can show what it said
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        # Ctrl-C as a terminal sends it. A shell without job control starts background jobs with SIGINT ignored,
        # children inherit that, and Python then installs no KeyboardInterrupt handler: under such a launcher
        # (`make test &` in a script) the child would rightly ignore the signal and train on
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        record = None
        while time.time() < deadline:
            found = list(tmp_path.rglob("run.json"))
            if found:
                record = found[0]
                if json.loads(record.read_text()).get("history"):
                    break
            time.sleep(0.5)
        assert record is not None, "training never started"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            status = json.loads(record.read_text())["status"]
            said = stderr.read_text()[-3000:]
            pytest.fail(f"no exit 120 s after Ctrl-C (run.json status {status!r}); stderr:\n{said}")
    finally:  # whatever failed above, no 200-epoch run is left training
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    rec = json.loads(record.read_text())
    assert rec["status"] == "interrupted"
    ckpt = record.parent / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and "state_dict" in torch.load(ckpt, map_location="cpu", weights_only=False)
    assert lock_is_free(record.parent)


def test_a_second_writer_of_a_run_folder_is_refused(tmp_path):
    first = RunFolder(tmp_path / "run")
    first.acquire()
    with pytest.raises(RuntimeError, match=f"being written by process {os.getpid()}"):
        RunFolder(tmp_path / "run").acquire()
    first.release()
    RunFolder(tmp_path / "run").acquire()  # free again once released


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / "run").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run" / ".lock").write_text(str(dead.pid))
    RunFolder(tmp_path / "run").acquire()
    assert (tmp_path / "run" / ".lock").read_text() == str(os.getpid())


def test_sigkill_during_a_checkpoint_write_leaves_a_loadable_last_ckpt(tmp_path):
    target = tmp_path / "last.ckpt"
    script = (
        "import sys, torch\n"
        "from mmfuse.callbacks.checkpoints import AtomicCheckpointIO\n"
        "io = AtomicCheckpointIO()\n"
        "i = 0\n"
        "while True:\n"
        "    io.save_checkpoint({'step': i, 'weights': torch.full((20_000_000,), float(i))}, sys.argv[1])\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT)
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)  # well inside a later write of the 80 MB tensor
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(target, weights_only=True)
    assert float(ckpt["weights"][-1]) == ckpt["step"]  # a whole checkpoint, old or new, never a torn one

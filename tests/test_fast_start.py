"""The fast start: the W&B run created beside data and model is the run a start in line made; a W&B start that
fails or is interrupted never costs the run or its record; torchmetrics comes without its unused optional packages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import lock_is_free
from mmfuse.tracking import wandb_setup
from mmfuse.tracking.wandb_offline import read_offline_run
from mmfuse.train import train

ROOT = Path(__file__).resolve().parents[1]
QUICK = ("evaluation.robustness=false", "data.modalities=[image,tabular]")


def offline_run(run_dir, wait: float = 60.0) -> dict:
    """The offline W&B run of a run trained in this process, once its exit record is written.

    W&B's service process (shared by the test process's runs) writes the run file on its own schedule; on a loaded
    machine its last records can land after wandb.finish() returns. A run whose exit never comes fails the test."""
    (folder,) = Path(run_dir).glob("wandb/offline-run-*")
    deadline = time.time() + wait
    run = read_offline_run(folder)
    while "exit_code" not in run and time.time() < deadline:
        time.sleep(0.2)
        run = read_offline_run(folder)
    return run


def test_offline_wandb_run_holds_the_runs_config_and_summaries(cfg_factory):
    cfg = cfg_factory("logger=many", "trainer.max_epochs=2", *QUICK)
    record = train(cfg)
    wb = offline_run(cfg.paths.run_dir)
    assert record["wandb"]["status"] == "ok" and wb["id"] == record["wandb"]["id"] and wb["exit_code"] == 0
    assert (wb["name"], wb["group"], wb["job_type"]) == ("concat-s0", "default", "train")
    assert wb["tags"] == ["concat", "synthetic", "fusion"]
    assert wb["config"]["cfg"] == record["config"]
    assert wb["config"]["fusion"] == "concat" and wb["config"]["seed"] == 0 and wb["config"]["data"] == "synthetic"
    # define_metric summaries: the best epoch's value, as the run record's history says
    history = record["history"]
    assert wb["summary"]["val/acc"] == {"max": max(h["val/acc"] for h in history)}
    assert wb["summary"]["val/loss"] == {"min": min(h["val/loss"] for h in history)}
    for key in ("test/acc", "test/f1", "test/loss"):
        assert wb["summary"][key] == pytest.approx(record["metrics"][key], rel=1e-6), key
    assert wb["summary"]["complexity/total"] == record["params"]["total"]


def test_wandb_starts_in_its_own_thread_while_data_and_model_are_built(cfg_factory, monkeypatch):
    import wandb

    real_init, seen = wandb.init, {}

    def init(*args, **kwargs):
        seen["thread"] = threading.current_thread().name
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    cfg = cfg_factory("logger=wandb", *QUICK)
    record = train(cfg)
    assert seen["thread"] == "mmfuse-wandb-start" and record["wandb"]["status"] == "ok"
    marks = record["timing"]["startup"]
    assert list(marks)[-5:] == ["record", "data", "model", "wandb", "trainer"]
    times = list(marks.values())
    assert times == sorted(times) and times[-1] <= record["timing"]["first_step_at"]
    assert offline_run(cfg.paths.run_dir)["exit_code"] == 0


def test_a_failing_wandb_start_still_trains(cfg_factory, monkeypatch, caplog):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken)
    cfg = cfg_factory("logger=many", *QUICK)
    record = train(cfg)
    assert record["status"] == "completed" and "test/acc" in record["metrics"]
    assert record["wandb"] == {"status": "disabled", "reason": "RuntimeError: no W&B today"}
    assert "W&B disabled for this run" in caplog.text
    assert not list(Path(cfg.paths.run_dir).glob("wandb/offline-run-*"))
    assert (Path(cfg.paths.run_dir) / "csv" / "metrics.csv").is_file()


def interrupt_data_setup(monkeypatch) -> None:
    from mmfuse.data.synthetic import SyntheticDataModule

    def setup(self, stage=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(SyntheticDataModule, "setup", setup)


def test_ctrl_c_during_a_slow_wandb_start_keeps_the_record_and_ends_the_wandb_run(cfg_factory, monkeypatch):
    import wandb

    real_init = wandb.init

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", slow)
    interrupt_data_setup(monkeypatch)
    cfg = cfg_factory("logger=wandb", *QUICK)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    run_dir = Path(cfg.paths.run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and lock_is_free(run_dir)
    assert wandb.run is None and offline_run(run_dir)["exit_code"] == 1  # the start was waited for, then finished


def test_ctrl_c_during_a_hung_wandb_start_does_not_hang(cfg_factory, monkeypatch):
    import wandb

    release = threading.Event()

    def hung(*args, **kwargs):
        release.wait(60)
        raise RuntimeError("released")

    monkeypatch.setattr(wandb, "init", hung)
    monkeypatch.setattr(wandb_setup, "FINISH_WAIT_SECONDS", 0.5)
    interrupt_data_setup(monkeypatch)
    cfg = cfg_factory("logger=wandb", *QUICK)
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
        assert time.perf_counter() - started < 30
        run_dir = Path(cfg.paths.run_dir)
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
        assert lock_is_free(run_dir)
    finally:
        release.set()


def test_cli_run_imports_neither_unused_optional_packages_nor_wandb_launch(tmp_path):
    """torchmetrics without scipy/torchvision/transformers/matplotlib, and availability asked again afterwards."""
    code = (
        "import json, sys\n"
        "from mmfuse.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "from torchmetrics.utilities import imports as tm\n"
        "names = ('scipy', 'torchvision', 'transformers', 'matplotlib', 'wandb', 'wandb.sdk.launch')\n"
        "print(json.dumps({'code': code, 'loaded': [m for m in names if m in sys.modules],\n"
        "                  'torchvision_later': bool(tm._TORCHVISION_AVAILABLE)}))\n"
    )
    args = ["train", f"paths.output_dir={tmp_path}", "logger=many", "data.n_samples=400", "trainer.max_epochs=1",
            "callbacks=minimal", "trainer.enable_progress_bar=false", *QUICK]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] == 0 and out["loaded"] == ["wandb"]
    assert out["torchvision_later"]  # installed here: a later check says so
    (record,) = tmp_path.glob("runs/*/run.json")
    assert json.loads(record.read_text())["wandb"]["status"] == "ok"

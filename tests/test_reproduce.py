"""`mmfuse reproduce`: a run re-run from its snapshot alone gives the same metrics, bit for bit on CPU."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import CONF, run_cli
from mmfuse.cli import reproduce
from mmfuse.lifecycle import reproduce as lib

TINY = ["data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=2", "callbacks=minimal",
        "logger=csv", "trainer.enable_progress_bar=false"]


def only(folder: Path) -> Path:
    (path,) = [p for p in folder.iterdir() if p.is_dir()]
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-job sweep trained from a copy of conf/ (edited later); each job folder is a run folder too."""
    root = tmp_path_factory.mktemp("repro")
    conf = root / "conf"
    shutil.copytree(CONF, conf)
    result = run_cli("train", "-m", "fusion=late", "seed=0,1", f"paths.output_dir={root}", *TINY,
                     env={"MMFUSE_CONFIG_DIR": str(conf)})
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only(root / "sweeps")
    return {"conf": conf, "root": root, "sweep": sweep, "run": sorted(p for p in sweep.iterdir() if p.is_dir())[0]}


def test_reproduce_is_exact_after_conf_changed(trained, capsys):
    model_cfg = trained["conf"] / "model" / "default.yaml"
    text = model_cfg.read_text()
    assert "lr: 0.003" in text
    model_cfg.write_text(text.replace("lr: 0.003", "lr: 0.05"))  # today's conf/ no longer says what the run used
    run = trained["run"]
    before = sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*"))
    code = reproduce.main([str(run)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "REPRODUCED" in out and "exact" in out and "test/acc" in out
    (new_dir,) = list((trained["root"] / "reproductions").glob("*_late-s0"))
    new, old = (json.loads((d / "run.json").read_text()) for d in (new_dir, run))
    assert new["reproduced_from"]["run_dir"] == str(run.resolve())
    assert new["metrics"] == old["metrics"] and new["metrics"]["test/acc"] is not None
    assert new["config"]["model"]["optimizer"]["lr"] == old["config"]["model"]["optimizer"]["lr"]
    assert (new_dir / ".hydra" / "config.yaml").is_file() and (new_dir / "checkpoints" / "last.ckpt").is_file()
    assert sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*")) == before  # the original is never written


def test_reproduce_a_sweep_and_selected_jobs(trained, capsys):
    sweep = trained["sweep"]
    assert reproduce.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert out.count("REPRODUCED (exact") == 2 and "2 job(s) reproduced" in out
    (batch,) = (trained["root"] / "reproductions").glob(f"*_{sweep.name}")
    assert sorted(p.name for p in batch.iterdir()) == sorted(p.name for p in sweep.iterdir() if p.is_dir())
    runs, is_sweep = lib.select_runs(sweep, "1")
    assert is_sweep and len(runs) == 1 and runs[0].name.startswith("1_")
    assert json.loads((batch / runs[0].name / "run.json").read_text())["reproduced_from"]["run_dir"] == str(
        runs[0].resolve()
    )


def test_a_tampered_metric_is_detected(trained, tmp_path, capsys):
    copy = tmp_path / "runs" / "tampered"
    shutil.copytree(trained["run"], copy)
    record = json.loads((copy / "run.json").read_text())
    record["metrics"]["test/acc"] += 0.01
    (copy / "run.json").write_text(json.dumps(record))
    assert reproduce.main([str(copy)]) == 1
    out = capsys.readouterr().out
    assert "NOT REPRODUCED" in out and "DIFFERS" in out and "1 of" in out


def test_environment_difference_switches_to_tolerance():
    original = {
        "versions": {"torch": "2.0"},
        "environment": {"threads": 2, "device": "cpu"},
        "git": {"commit": "a"},
        "data_fingerprint": "x",
    }
    new = {
        "versions": {"torch": "2.1"},
        "environment": {"threads": 1, "device": "cpu"},
        "git": {"commit": "b"},
        "data_fingerprint": "x",
    }
    strict, notes = lib.environment_differences(original, new)
    assert strict == ["torch 2.0 -> 2.1", "threads 2 -> 1"] and notes == ["git commit a -> b"]
    rows = lib.compare_metrics({"a": 0.5}, {"a": 0.5004}, tolerance=1e-3)
    assert rows[0]["match"] and not lib.compare_metrics({"a": 0.5}, {"a": 0.5004}, None)[0]["match"]


def test_failed_run_and_non_run_folders_are_one_clear_line(trained, tmp_path, capsys):
    failed = tmp_path / "runs" / "failed-run"
    shutil.copytree(trained["run"], failed)
    record = json.loads((failed / "run.json").read_text())
    (failed / "run.json").write_text(json.dumps({**record, "status": "failed"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, expected in [
        (failed, "'failed', not 'completed'"),
        (empty, "neither a run folder nor a sweep"),
        (tmp_path / "nope", "no such folder"),
    ]:
        assert reproduce.main([str(path)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "runs"]
    assert reproduce.main([str(trained["sweep"]), "--jobs", "7"]) == 2
    assert "no job(s) [7]" in capsys.readouterr().err


def test_cli_dispatches_reproduce(tmp_path):
    result = run_cli("reproduce", str(tmp_path))
    assert result.returncode == 2 and "mmfuse reproduce: error:" in result.stderr and "Traceback" not in result.stderr

"""`mmfuse eval`: a run's checkpoint tested with the run's own config gives back the recorded test metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mmfuse.cli import evaluate
from mmfuse.lifecycle.evaluate import evaluate as evaluate_run
from mmfuse.lifecycle.snapshot import SNAPSHOT

TINY = ["data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=2", "callbacks=minimal",
        "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run trained in-process, with the config snapshot Hydra would have written."""
    from hydra.core.global_hydra import GlobalHydra

    from conftest import compose_config
    from mmfuse.train import train

    folder = tmp_path_factory.mktemp("eval") / "runs" / "late-s0"
    cfg = compose_config(["fusion=late", "logger=wandb", *TINY], folder)
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / SNAPSHOT)
    train(cfg)
    GlobalHydra.instance().clear()
    return folder


def test_eval_gives_back_the_recorded_test_metrics(run_dir, capsys):
    assert evaluate.main([str(run_dir)]) == 0
    assert "test/acc" in capsys.readouterr().out
    record = json.loads((run_dir / "run.json").read_text())
    (entry,) = record["evals"]
    assert entry["metrics"]["test/acc"] == record["metrics"]["test/acc"]  # exact on CPU
    assert {k: v for k, v in entry["metrics"].items()} == {
        k: v for k, v in record["metrics"].items() if k.startswith("test/")
    }
    results = json.loads((Path(entry["eval_dir"]) / "results.json").read_text())
    assert results["metrics"] == entry["metrics"] and results["ckpt"] == "best"
    assert results["data_fingerprint"] == record["data_fingerprint"]
    # W&B: a run of its own, job_type=eval, in the training run's group
    from mmfuse.tracking.wandb_offline import read_offline_run

    (offline,) = (Path(entry["eval_dir"]) / "wandb").glob("offline-run-*")
    wb = read_offline_run(offline)
    assert results["wandb"]["status"] == "ok" and wb["job_type"] == "eval" and wb["group"] == "default"
    assert wb["summary"]["test/acc"] == record["metrics"]["test/acc"]


def test_eval_with_overrides_and_last_checkpoint(run_dir):
    results = evaluate_run(run_dir, "last", ["data.data_seed=1"], use_wandb=False)
    record = json.loads((run_dir / "run.json").read_text())
    assert results["data_fingerprint"] != record["data_fingerprint"]
    assert record["evals"][-1]["overrides"] == ["data.data_seed=1"] and record["evals"][-1]["ckpt"] == "last"
    assert OmegaConf.load(Path(results["eval_dir"]) / "config.yaml").data.data_seed == 1


def test_wandb_failure_does_not_fail_eval(run_dir, monkeypatch, capsys):
    import wandb

    def broken(*a, **k):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken)
    results = evaluate_run(run_dir, "best", [])
    assert results["wandb"]["status"] == "disabled" and "no W&B today" in capsys.readouterr().err


def test_bad_checkpoints_and_folders_are_one_clear_line(run_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval", "wandb"))
    (copy / "checkpoints" / "best.ckpt").unlink()
    (copy / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    before = (copy / "run.json").read_text()
    cases = [
        ([str(copy)], "no best checkpoint"),
        ([str(copy), "--ckpt", "last"], "cannot load checkpoint"),
        ([str(tmp_path)], "is not a run folder"),
        ([str(copy), "--ckpt", "last", "data.nope=1"], "has no key 'data.nope'"),
    ]
    for argv, expected in cases:
        assert evaluate.main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, err
    assert not (copy / "eval").exists() and (copy / "run.json").read_text() == before

"""The bad-input catalogue (docs/ERRORS.md): every trigger through the real command line.

Each case: a non-zero exit, the specific message on stderr, no Python
traceback, and nothing that was already in outputs/ changed.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, run_cli

QUICK = ["logger=none", "callbacks=minimal", "data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=1"]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An outputs/ folder that already holds a finished run, which no failing command may touch."""
    root = tmp_path_factory.mktemp("outputs")
    earlier = root / "runs" / "2026-01-01_00-00-00_000000_concat-s0"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "run.json").write_text(json.dumps({"status": "completed", "metrics": {"test/acc": 0.9}}))
    (earlier / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Broken input files for the data cases."""
    root = tmp_path_factory.mktemp("bad_files")
    fsdd = root / "fsdd" / "recordings"
    fsdd.mkdir(parents=True)
    for wav in sorted((SHARED_DATA / "fsdd" / "recordings").glob("*.wav")):
        shutil.copy(wav, fsdd / wav.name)
    victim = fsdd / "4_lucas_33.wav"
    victim.write_bytes(victim.read_bytes()[:30])
    avmnist = root / "avmnist"
    for sub in ("image", "audio"):
        (avmnist / sub).mkdir(parents=True)
    for split, n in (("train", 12), ("test", 6)):
        np.save(avmnist / "image" / f"{split}_data.npy", np.zeros((n, 30), dtype=np.uint8))  # wrong: 30 pixels
        np.save(avmnist / "audio" / f"{split}_data.npy", np.zeros((n, 112, 112), dtype=np.float32))
        np.save(avmnist / f"{split}_labels.npy", np.zeros(n, dtype=np.int64))
    manifest = root / "manifest.csv"
    manifest.write_text("text,label,split\nhello there,cat,train\nhi,dog,train\nyo,cat,val\nhey,cat,test\n")
    return {"fsdd": root / "fsdd", "avmnist": avmnist, "manifest": manifest, "root": root}


CASES = {
    # config
    "unknown choice": (["fusion=nope"], "Could not find 'fusion/nope'"),
    "key typo": (["trainer.max_epoch=3"], "Could not override 'trainer.max_epoch'"),
    "wrong type": (["trainer.max_epochs=abc"], "trainer.max_epochs='abc': expected an integer"),
    "zero epochs": (["trainer.max_epochs=0"], "trainer.max_epochs=0: expected an integer >= 1"),
    "negative lr": (["model.optimizer.lr=-0.1"], "model.optimizer.lr=-0.1: expected a number > 0"),
    "seed not an integer": (["seed=abc"], "seed='abc': expected an integer or null"),
    "zero batch size": (["data.batch_size=0"], "data.batch_size=0: expected an integer >= 1"),
    "modality dropout out of range": (["model.modality_dropout=1.5"], "model.modality_dropout=1.5"),
    "unknown interaction": (["data.interaction=xor"], "data.interaction='xor'"),
    "bad split fractions": (["data.split=[0.5,0.5,0.5]"], "data.split must be three"),
    "empty split": (["data.split=[1.0,0.0,0.0]"], "data split 'val' of data set 'synthetic' is empty"),
    "unknown late-fusion rule": (["fusion=late", "fusion.combine=median"], "fusion.combine='median'"),
    "zero threads": (["threads=0"], "threads=0: expected an integer >= 1"),
    "robustness on no test samples": (["evaluation.max_samples=0"], "evaluation.max_samples=0: expected an integer >= 1"),
    "robustness on more samples than the test set": (["evaluation.max_samples=46"],
                                                     "evaluation.max_samples=46 is larger than the test set"),
    "unsorted severities": (["evaluation.severities=[0.5,0.1]"], "evaluation.severities=[0.5, 0.1]: expected ascending"),
    "severity out of range": (["evaluation.severities=[0.0,1.5]"], "[1.5] outside the allowed range [0, 1]"),
    "class weights of the wrong count": (["model.loss.class_weights=[1,2]"],
                                         "model.loss.class_weights=[1, 2]: expected null, balanced or a list of 4"),
    # models
    "fusion needs two modalities": (["fusion=tensor", "data.modalities=[tabular]", "data.interaction=redundant"],
                                    "fusion=tensor needs at least 2 modalities"),
    "oversized tensor fusion": (["fusion=tensor", "fusion.proj_dim=null", "data.modalities=[image,text,audio,tabular]"],
                                "use fusion=lowrank or a smaller fusion.proj_dim"),
    "encoder for a missing modality": (["encoder/text=bag"], "sets an encoder for modality 'text'"),
    "unimodal on a missing modality": (["fusion=unimodal", "fusion.modality=audio"], "fusion.modality='audio'"),
    "model asks for a missing modality": (["model.modalities=[text]"], "model.modalities asks for ['text']"),
    # data
    "missing data folder": (["data=avmnist_real", "paths.data_dir=/nonexistent"], "MNIST t10k IDX files not found"),
    "npy of the wrong shape": (["data=avmnist", "data.data_dir={avmnist}"], "image/train_data.npy"),
    "truncated wav": (["data=avmnist_real", f"data.mnist_dir={SHARED_DATA / 'mnist'}", "data.fsdd_dir={fsdd}",
                       "data.cache_dir={root}/cache", "data.sizes=[100,50,50]"], "4_lucas_33.wav"),
    "manifest without modality columns": (["data=manifest", "data.path={manifest}", "data.columns.text=missing_col"],
                                          "missing_col"),
    # environment
    "output dir without parent": (["paths.output_dir=/nonexistent/outputs"], "its parent folder does not exist"),
    "output dir is a file": (["paths.output_dir={root}/manifest.csv"], "is not a folder"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_answered_with_a_clear_error(name, outputs, files):
    overrides, message = CASES[name]
    overrides = [o.format(**{k: str(v) for k, v in files.items()}) for o in overrides]
    if not any(o.startswith("paths.output_dir=") for o in overrides):
        overrides.append(f"paths.output_dir={outputs}")
    quick = [q for q in QUICK if not any(o.split("=")[0] == q.split("=")[0] for o in overrides)]
    if any(o.startswith("data=") and o != "data=synthetic" for o in overrides):
        quick = [q for q in quick if not q.startswith("data.")]
    before = snapshot(outputs / "runs" / "2026-01-01_00-00-00_000000_concat-s0")
    result = run_cli("train", *overrides, *quick)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert snapshot(outputs / "runs" / "2026-01-01_00-00-00_000000_concat-s0") == before


def test_compare_of_an_empty_folder_and_of_a_missing_path(tmp_path):
    empty = run_cli("compare", str(tmp_path))
    assert empty.returncode != 0 and "no runs" in empty.stderr.lower() and "Traceback" not in empty.stderr
    missing = run_cli("compare", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_verbose_shows_the_traceback(tmp_path):
    result = run_cli("train", "--verbose", "trainer.max_epochs=0", f"paths.output_dir={tmp_path}", *QUICK[:-1])
    assert result.returncode == 1 and "Traceback" in result.stderr and "trainer.max_epochs=0" in result.stderr


def test_wandb_failure_never_takes_a_run_down(tmp_path):
    result = run_cli("train", f"paths.output_dir={tmp_path}", "logger=wandb", "logger.wandb.mode=bogus",
                     *[q for q in QUICK if q != "logger=none"])
    assert result.returncode == 0, result.stderr[-1500:]
    (record,) = [json.loads(p.read_text()) for p in tmp_path.rglob("run.json")]
    assert record["status"] == "completed" and record["wandb"]["status"] == "disabled" and record["wandb"]["reason"]


def test_sweep_goes_on_after_failures_and_fail_fast_stops_it(tmp_path):
    args = ["train", "-m", "fusion=concat,tensor,late", "data.modalities=[tabular]", "data.interaction=redundant",
            "logger=none", "callbacks=minimal", "data.n_samples=300", "trainer.max_epochs=1"]
    on = run_cli(*args, f"paths.output_dir={tmp_path / 'a'}")
    assert on.returncode == 1 and "1 job(s) failed" in on.stderr
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "a").rglob("run.json"))
    assert statuses == ["completed", "completed", "failed"]
    stop = run_cli(*args, f"paths.output_dir={tmp_path / 'b'}", "sweep.fail_fast=true")
    assert stop.returncode == 1
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "b").rglob("run.json"))
    assert statuses == ["completed", "failed"]  # the job after the failure never ran


def test_lifecycle_commands_refuse_what_is_not_a_finished_run(tmp_path, outputs):
    before = snapshot(outputs / "runs" / "2026-01-01_00-00-00_000000_concat-s0")
    failed = run_cli("train", "trainer.max_epochs=0", f"paths.output_dir={tmp_path}", *QUICK[:-1])
    assert failed.returncode == 1
    (failed_run,) = [p.parent for p in tmp_path.rglob("run.json")]
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    cases = [
        (["reproduce", str(failed_run)], "'failed', not 'completed'"),
        (["train", f"resume={not_a_run}"], str(not_a_run)),
        (["eval", str(not_a_run)], str(not_a_run)),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_run", "runs"]  # nothing new written
    assert snapshot(outputs / "runs" / "2026-01-01_00-00-00_000000_concat-s0") == before


def test_two_sweeps_launched_together_never_share_a_folder(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    args = [sys.executable, "-m", "mmfuse", "train", "-m", "seed=0", f"paths.output_dir={tmp_path}", *QUICK]
    env = {**__import__("os").environ, "WANDB_MODE": "offline"}
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    sweeps = sorted((tmp_path / "sweeps").iterdir())
    assert len(sweeps) == 2 and all(len(list(s.rglob("run.json"))) == 1 for s in sweeps)

"""`mmfuse train` as a user runs it: subprocesses, real sweeps, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

TINY = ["data.n_samples=300", "data.modalities=[image,tabular]", "trainer.max_epochs=1", "callbacks=minimal"]


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("run.json"))]


def test_multirun_gives_separate_runs_records_and_wandb_runs(tmp_path):
    result = run_cli("train", "-m", "fusion=concat,early,late", "seed=0", f"paths.output_dir={tmp_path}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "sweeps").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1", "2"]
    assert "fusion=late" in jobs[2].name
    recs = [json.loads((j / "run.json").read_text()) for j in jobs]
    assert [r["status"] for r in recs] == ["completed"] * 3
    assert [r["config"]["fusion"]["name"] for r in recs] == ["concat", "early", "late"]
    assert all((j / ".hydra" / "config.yaml").is_file() and (j / "checkpoints" / "last.ckpt").is_file() for j in jobs)
    offline = [list((j / "wandb").glob("offline-run-*")) for j in jobs]
    assert all(len(o) == 1 for o in offline), offline
    ids = {r["wandb"]["id"] for r in recs}
    assert len(ids) == 3
    # each W&B run holds its own config and summary; the sweep is the group
    from mmfuse.tracking.wandb_offline import read_offline_run

    runs = [read_offline_run(o[0]) for o in offline]
    assert len({w["group"] for w in runs}) == 1 and sweeps[0].name in runs[0]["group"]
    for w, r in zip(runs, recs):
        name = r["config"]["fusion"]["name"]
        assert w["config"]["fusion"] == name and w["config"]["seed"] == 0 and w["config"]["data"] == "synthetic"
        assert w["name"] == f"{name}-s0" and w["job_type"] == "train" and name in w["tags"] and "synthetic" in w["tags"]
        assert w["summary"]["test/acc"] == r["metrics"]["test/acc"]
        assert w["summary"]["val/acc"]["max"] == r["metrics"]["val/acc_best"]
        assert w["exit_code"] == 0


def test_single_run_folder_is_readable_and_unique(tmp_path):
    a = run_cli("train", "fusion=late", "seed=3", f"paths.output_dir={tmp_path}", "logger=csv", *TINY)
    b = run_cli("train", "fusion=late", "seed=3", f"paths.output_dir={tmp_path}", "logger=csv", *TINY)
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.endswith("_late-s3") for r in runs)
    date, time, micro = runs[0].name.split("_")[:3]
    assert len(date) == 10 and len(time) == 8 and len(micro) == 6


def test_failed_run_exits_nonzero_with_one_clear_line(tmp_path):
    result = run_cli("train", "model.modalities=[text]", f"paths.output_dir={tmp_path}", "logger=none", *TINY)
    assert result.returncode == 1
    assert "model.modalities asks for ['text']" in result.stderr and "Traceback" not in result.stderr
    (rec,) = records(tmp_path)
    assert rec["status"] == "failed" and "text" in rec["error"]["message"]


def test_encoder_for_a_modality_the_data_lacks_is_named(tmp_path):
    result = run_cli("train", "encoder/text=bag", f"paths.output_dir={tmp_path}", "logger=none", *TINY)
    assert result.returncode == 1
    assert "encoder/text=bag" in result.stderr and "'text'" in result.stderr and "['image', 'tabular']" in result.stderr


def test_fusion_given_too_few_modalities_is_named(tmp_path):
    result = run_cli("train", "fusion=tensor", "data.modalities=[image]", "data.interaction=redundant",
                     f"paths.output_dir={tmp_path}", "logger=none", *TINY[2:])
    assert result.returncode == 1
    assert "fusion=tensor" in result.stderr and "['image']" in result.stderr and "Traceback" not in result.stderr


def test_missing_or_unwritable_output_dir_is_a_clear_error(tmp_path):
    missing = run_cli("train", f"paths.output_dir={tmp_path}/no/such/dir", *TINY)
    assert missing.returncode == 2 and "paths.output_dir" in missing.stderr and "does not exist" in missing.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    unwritable = run_cli("train", f"paths.output_dir={blocker}", *TINY)
    assert unwritable.returncode == 2 and "is not a folder" in unwritable.stderr
    assert "Traceback" not in missing.stderr + unwritable.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_python_dash_m_and_console_script_agree():
    import subprocess
    import sys

    via_m = subprocess.run([sys.executable, "-m", "mmfuse", "--help"], capture_output=True, text=True)
    via_script = subprocess.run([str(Path(sys.executable).parent / "mmfuse"), "--help"], capture_output=True, text=True)
    assert via_m.returncode == via_script.returncode == 0
    assert via_m.stdout == via_script.stdout and "train" in via_m.stdout


def test_joblib_sweep_shares_one_sweep_folder_and_records_failures(tmp_path):
    """Parallel workers resolve hydra.sweep.dir again: they must land in the parent's folder.
    One job fails (tensor fusion needs two modalities); the other completes; the exit status says so.
    The workers leave without module teardown (mmfuse/cli/process.py): the W&B run they wrote is whole."""
    result = run_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data.modalities=[tabular]",
                     "data.interaction=redundant", "fusion=concat,tensor", f"paths.output_dir={tmp_path}", *TINY[2:])
    assert result.returncode == 1
    (sweep,) = list((tmp_path / "sweeps").iterdir())
    recs = {r["config"]["fusion"]["name"]: r for r in records(sweep)}
    assert recs["concat"]["status"] == "completed" and recs["tensor"]["status"] == "failed"
    assert "1 job(s) failed" in result.stderr and "fusion=tensor" in result.stderr
    assert all(r["environment"]["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in recs.values())
    from mmfuse.tracking.wandb_offline import read_offline_run

    (offline,) = Path(recs["concat"]["run_dir"]).glob("wandb/offline-run-*")
    run = read_offline_run(offline)
    assert run["exit_code"] == 0 and run["summary"]["test/acc"] == recs["concat"]["metrics"]["test/acc"]
    assert recs["concat"]["timing"]["ended_at"] > recs["concat"]["timing"]["first_step_at"]


def test_prewarmed_joblib_workers_are_the_ones_the_launcher_uses(tmp_path):
    """The callback starts joblib's workers on their imports; Hydra's launcher must then get the same processes."""
    from hydra.core.hydra_config import HydraConfig
    from joblib import Parallel, delayed
    from omegaconf import OmegaConf

    from conftest import compose_config
    from mmfuse.cli import prewarm as launching

    compose_config(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    cfg = OmegaConf.create({"hydra": {"launcher": OmegaConf.to_container(HydraConfig.get().launcher),
                                      "sweep": {"dir": str(tmp_path)}}})
    launching.PrewarmJoblibWorkers().on_multirun_start(cfg)
    assert len(launching._pending) == 1
    warmed = set(launching._pending[0])  # waits for both imports
    launching.PrewarmJoblibWorkers().on_multirun_end(cfg)
    assert len(warmed) == 2 and not launching._pending
    used = Parallel(**launching.joblib_arguments(cfg.hydra.launcher))(delayed(os.getpid)() for _ in range(8))
    assert set(used) <= warmed, (used, warmed)


def test_console_entry_says_a_bad_config_folder_and_exits_2(tmp_path):
    result = run_cli("train", "fusion=late", env={"MMFUSE_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 2 and f"MMFUSE_CONFIG_DIR={tmp_path}: no train.yaml in that folder" in result.stderr


@pytest.mark.parametrize("command", [["export"], ["predict"], ["eval"], ["reproduce"], ["compare"], ["check"],
                                     ["train"], ["train", "resume"]])
def test_help_of_every_command_imports_no_torch(command):
    """`--help` answers at once: torch (about 2 s to import here) stays unimported until a command does work."""
    code = (
        "import sys\n"
        "from mmfuse.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:] + ['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    *help_text, verdict = done.stdout.strip().splitlines()
    assert len(help_text) >= 3, done.stdout  # the command's help was printed
    assert verdict == "torch not loaded"

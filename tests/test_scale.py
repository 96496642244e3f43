"""Scaling out on existing engines: Hydra's Optuna sweeper, the submitit launcher, and Lightning DDP on CPU."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from conftest import CONF, run_cli

TINY = ["data.n_samples=300", "trainer.max_epochs=1", "logger=csv", "evaluation.robustness=false",
        "trainer.enable_progress_bar=false"]


def records(sweep_root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_root.glob("sweeps/*/*/run.json"))]


def test_optuna_search_runs_three_trials_and_survives_a_failing_one(tmp_path):
    """Three trials on a grid: one has an invalid modality dropout, fails, is recorded as failed; the search
    finishes."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    # the shipped search with a grid sampler (TPE would pick the values at random)
    shipped = yaml.safe_load((CONF / "hparams_search" / "fusion_optuna.yaml").read_text())
    shipped["defaults"] = [
        d if "sampler" not in str(d) else {"override /hydra/sweeper/sampler": "grid"} for d in shipped["defaults"]
    ]
    del shipped["hydra"]["sweeper"]["sampler"]
    shipped["hydra"]["sweeper"].update(n_trials=3, params={"model.modality_dropout": "choice(0.0, 0.2, 1.5)"})
    (conf / "hparams_search" / "tiny_grid.yaml").write_text("# @package _global_\n" + yaml.safe_dump(shipped))
    done = run_cli(
        "train",
        "hparams_search=tiny_grid",
        f"paths.output_dir={tmp_path / 'out'}",
        *TINY,
        env={"MMFUSE_CONFIG_DIR": str(conf)},
    )
    assert done.returncode == 1, done.stderr[-3000:]  # one trial failed: said, and the search still finished
    assert "1 job(s) failed" in done.stderr and "model.modality_dropout=1.5" in done.stderr
    runs = records(tmp_path / "out")
    assert sorted(r["config"]["model"]["modality_dropout"] for r in runs) == [0.0, 0.2, 1.5]
    by_dropout = {r["config"]["model"]["modality_dropout"]: r for r in runs}
    assert by_dropout[1.5]["status"] == "failed" and "model.modality_dropout" in by_dropout[1.5]["error"]["message"]
    assert by_dropout[0.0]["status"] == by_dropout[0.2]["status"] == "completed"
    result = yaml.safe_load(next((tmp_path / "out").glob("sweeps/*/optimization_results.yaml")).read_text())
    best = max((r for r in runs if r["status"] == "completed"), key=lambda r: r["metrics"]["val/acc_best"])
    assert result["best_value"] == best["metrics"]["val/acc_best"]
    assert result["best_params"]["model.modality_dropout"] == best["config"]["model"]["modality_dropout"]


def test_the_shipped_tpe_search_runs_its_seeded_trials(tmp_path):
    """hparams_search=fusion_optuna as shipped (TPE, seed 0), cut to two trials: each trial runs the parameters
    Optuna's seeded TPE sampler draws for the shipped search space (computed here with Optuna itself), and the
    search reports the better trial."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    done = run_cli(
        "train", "hparams_search=fusion_optuna", "hydra.sweeper.n_trials=2", f"paths.output_dir={tmp_path}", *TINY
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shipped = yaml.safe_load((CONF / "hparams_search" / "fusion_optuna.yaml").read_text())["hydra"]["sweeper"]
    space, _ = create_params_from_overrides([f"{k}={v}" for k, v in shipped["params"].items()])
    sampler = optuna.samplers.TPESampler(
        seed=shipped["sampler"]["seed"], n_startup_trials=shipped["sampler"]["n_startup_trials"]
    )
    study = optuna.create_study(sampler=sampler, direction=shipped["direction"])
    expected = [study.ask(fixed_distributions=space).params for _ in range(2)]
    runs = records(tmp_path)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    seen = [
        {
            "fusion": r["choices"]["fusion"],
            "model.optimizer.lr": r["config"]["model"]["optimizer"]["lr"],
            "model.modality_dropout": r["config"]["model"]["modality_dropout"],
        }
        for r in runs
    ]
    assert seen == expected
    result = yaml.safe_load(next(tmp_path.glob("sweeps/*/optimization_results.yaml")).read_text())
    best = max(runs, key=lambda r: r["metrics"]["val/acc_best"])
    assert result["best_value"] == best["metrics"]["val/acc_best"]
    assert result["best_params"]["fusion"] == best["choices"]["fusion"]


def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path):
    done = run_cli(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "fusion=concat,late",
        f"paths.output_dir={tmp_path}",
        *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = records(tmp_path)
    assert sorted(r["choices"]["fusion"] for r in runs) == ["concat", "late"]
    assert all(r["status"] == "completed" and r["environment"]["threads"] == 1 for r in runs)
    assert len({r["pid"] for r in runs}) == 2 and all(r["sweep_dir"] == runs[0]["sweep_dir"] for r in runs)
    assert len(list(Path(runs[0]["sweep_dir"]).glob(".submitit/*/*_result.pkl"))) == 2


def test_the_shipped_search_space_composes():
    done = run_cli("train", "hparams_search=fusion_optuna", "--cfg", "hydra")
    assert done.returncode == 0, done.stderr[-2000:]
    sweeper = yaml.safe_load(done.stdout)["hydra"]["sweeper"]
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"
    assert sweeper["max_failure_rate"] == 1.0 and sweeper["sampler"]["seed"] == 0
    assert set(sweeper["params"]) == {"fusion", "model.optimizer.lr", "model.modality_dropout"}


def test_ddp_cpu_on_two_processes_matches_one_process_and_writes_once(tmp_path):
    """One sweep, two jobs: trainer=ddp_cpu (2 gloo processes) and the default single process, same data and seed.

    Each DDP process takes half of every batch, so with gradients averaged the two
    runs follow the same trajectory: their metrics agree to float precision. The
    metrics alone would also agree if every process trained on the whole batch, so
    each process writes down the samples it stepped on (tests/seen_samples.py), and
    those must be its half of the single process's batch at every step. The
    sweep is not re-launched in the DDP children (exactly two job folders).
    """
    seen = ["+callbacks.seen._target_=seen_samples.SeenSamples"]
    python_path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    done = run_cli(
        "train",
        "-m",
        "trainer=ddp_cpu,default",
        "threads=1",
        "data.modalities=[text,tabular]",
        "model.head.dropout=0",
        f"paths.output_dir={tmp_path}",
        *TINY,
        "trainer.max_epochs=2",
        *seen,
        env={"PYTHONPATH": python_path},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweeps = list((tmp_path / "sweeps").iterdir())
    assert len(sweeps) == 1 and len(list(sweeps[0].glob("*/run.json"))) == 2
    runs = {r["choices"]["trainer"]: r for r in records(tmp_path)}
    ddp, single = runs["ddp_cpu"], runs["default"]
    assert ddp["status"] == single["status"] == "completed"
    assert ddp["environment"]["processes"] == 2 and single["environment"]["processes"] == 1
    assert len(ddp["history"]) == len(single["history"]) == 2
    ckpts = sorted(p.name for p in (Path(ddp["run_dir"]) / "checkpoints").iterdir())
    assert ckpts == ["best.ckpt", "last.ckpt"]
    for metric in ("test/acc", "test/f1", "test/loss", "val/acc_best", "train/loss_epoch"):
        assert abs(ddp["metrics"][metric] - single["metrics"][metric]) <= 1e-4, metric

    def steps(run: dict, rank: int) -> list[list[float]]:
        return json.loads((Path(run["run_dir"]) / f"seen_rank{rank}.json").read_text())

    batches, ranks = steps(single, 0), [steps(ddp, 0), steps(ddp, 1)]
    samples = [s for batch in batches for s in batch]
    assert len(samples) == 2 * len(set(samples)) == 2 * single["data"]["sizes"]["train"]  # 2 epochs, told apart
    assert len(ranks[0]) == len(ranks[1]) == len(batches)  # both processes step as often as one
    for rank, shares in enumerate(ranks):
        assert shares == [batch[rank::2] for batch in batches], rank  # its half of each batch, nothing else

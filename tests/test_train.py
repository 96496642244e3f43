"""The train task through Hydra's compose API: records, checkpoints, metrics, seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl

from conftest import lock_is_free
from mmfuse.train import train

RECORD_KEYS = {"status", "config", "metrics", "timing", "params", "git", "versions", "data_fingerprint"}


def metrics_by_hand(cfg, checkpoint: Path) -> dict[str, float]:
    """The test metrics of a multiclass run recomputed from its best checkpoint's predictions on the test split, with
    plain tensor arithmetic: accuracy, macro precision/recall/F1, macro one-vs-rest AUROC (the rank statistic),
    mean cross-entropy."""
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from mmfuse.lifecycle.evaluate import load_model

    model = load_model(cfg, checkpoint)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    with torch.no_grad():
        pairs = [(model(batch), batch["label"]) for batch in dm.test_dataloader()]
    scores, labels = torch.cat([s for s, _ in pairs]).double(), torch.cat([y for _, y in pairs])
    preds, k = scores.argmax(1), scores.shape[1]
    tp = torch.stack([((preds == c) & (labels == c)).sum() for c in range(k)]).double()
    predicted = torch.stack([(preds == c).sum() for c in range(k)]).double()
    actual = torch.stack([(labels == c).sum() for c in range(k)]).double()
    assert (actual > 0).all()  # every class is in the test split: each macro average is over all k classes
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = tp / actual
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    probs = scores.softmax(1)
    aucs = []
    for c in range(k):  # P(a sample of class c scores higher than one of another class), ties counting half
        pos, neg = probs[labels == c, c], probs[labels != c, c]
        aucs.append(((pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()).mean())
    return {"test/acc": float((preds == labels).double().mean()), "test/precision": float(precision.mean()),
            "test/recall": float(recall.mean()), "test/f1": float(f1.mean()),
            "test/auroc": float(torch.stack(aucs).mean()),
            "test/loss": float(F.cross_entropy(scores, labels, label_smoothing=cfg.model.loss.label_smoothing))}


def test_one_epoch_run_writes_record_checkpoints_and_logs(cfg_factory):
    cfg = cfg_factory("fusion=late")
    record = train(cfg)
    run_dir = Path(cfg.paths.run_dir)
    on_disk = json.loads((run_dir / "run.json").read_text())
    assert on_disk == json.loads(json.dumps(record, default=str))
    assert RECORD_KEYS <= set(on_disk)
    assert on_disk["status"] == "completed"
    assert on_disk["config"]["fusion"]["name"] == "late"
    m = on_disk["metrics"]
    assert m["val/acc_best"] == max(row["val/acc"] for row in on_disk["history"])
    expected = metrics_by_hand(cfg, run_dir / "checkpoints" / "best.ckpt")
    assert {k: m[k] for k in expected} == pytest.approx(expected, abs=2e-6)
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert on_disk["wandb"]["status"] == "ok" and on_disk["wandb"]["mode"] == "offline"
    params = on_disk["params"]
    assert (
        params["total"]
        == sum(v for k, v in params.items() if k.startswith("encoder/")) + params["fusion"] + params["head"]
    )
    assert len(on_disk["history"]) == 1 and "val/acc" in on_disk["history"][0]
    assert on_disk["timing"]["wall_seconds"] > 0 and len(on_disk["data_fingerprint"]) == 64
    assert lock_is_free(run_dir)


def test_same_seed_same_metrics_different_seed_different(cfg_factory):
    overrides = ("logger=none", "data.modalities=[image,tabular]", "trainer.max_epochs=2")
    a = train(cfg_factory(*overrides, "seed=0"))["metrics"]
    b = train(cfg_factory(*overrides, "seed=0"))["metrics"]
    c = train(cfg_factory(*overrides, "seed=1"))["metrics"]
    keys = [k for k in a if k.startswith(("test/", "val/"))]
    assert keys and all(a[k] == b[k] for k in keys)
    assert any(a[k] != c[k] for k in keys)


def test_seed_zero_seeds(cfg_factory, monkeypatch):
    """seed=0 must seed (no truthiness check): two seed-0 runs see the same initial weights."""
    import pytorch_lightning as pl

    seen = []
    monkeypatch.setattr(pl, "seed_everything", lambda seed, **kw: seen.append(seed))
    cfg = cfg_factory("seed=0", "logger=none", "test=false", "data.modalities=[tabular]", "data.interaction=redundant")
    train(cfg)
    assert seen == [0]


def test_existing_run_is_never_overwritten(cfg_factory):
    cfg = cfg_factory("logger=none", "data.modalities=[tabular]", "data.interaction=redundant")
    train(cfg)
    record_path = Path(cfg.paths.run_dir) / "run.json"
    before = record_path.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        train(cfg)
    assert record_path.read_bytes() == before


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["model.modalities=[text]", "data.modalities=[image,tabular]"], r"lacks.*\['image', 'tabular'\]"),
        (["fusion=unimodal", "fusion.modality=audio", "data.modalities=[image,tabular]"], "fusion.modality='audio'"),
        (["trainer.max_epochs=0"], "trainer.max_epochs"),
        (["model.optimizer.lr=-1"], "model.optimizer.lr"),
    ],
)
def test_mismatches_fail_before_training_and_are_recorded(cfg_factory, overrides, match):
    cfg = cfg_factory("logger=none", *overrides)
    with pytest.raises(ValueError, match=match):
        train(cfg)
    rec = json.loads((Path(cfg.paths.run_dir) / "run.json").read_text())
    assert rec["status"] == "failed" and rec["metrics"] == {}
    assert not (Path(cfg.paths.run_dir) / "checkpoints").exists()


def test_bf16_mixed_precision_path_runs(cfg_factory):
    """trainer=gpu is bf16-mixed; without a GPU its precision path still runs end to end on the CPU."""
    cfg = cfg_factory(
        "trainer=gpu",
        "trainer.accelerator=cpu",
        "logger=none",
        "fusion=transformer",
        "data.modalities=[tabular,text]",
        "encoder/text=bag",
    )
    rec = train(cfg)
    assert rec["status"] == "completed" and rec["environment"]["precision"] == "bf16-mixed"
    correct = rec["metrics"]["test/acc"] * rec["data"]["sizes"]["test"]  # accuracy is a count over the test split
    assert abs(correct - round(correct)) < 1e-3 and 0 <= round(correct) <= rec["data"]["sizes"]["test"]
    assert rec["metrics"]["test/loss"] > 0 and rec["metrics"]["val/acc_best"] == rec["history"][-1]["val/acc"]


def test_divergence_ends_the_run_as_diverged(cfg_factory):
    from mmfuse.callbacks.divergence import Diverged

    cfg = cfg_factory(
        "logger=none",
        "model.optimizer._target_=torch.optim.SGD",
        "model.optimizer.lr=1e30",
        "model.optimizer.weight_decay=0",
        "trainer.gradient_clip_val=null",
    )
    with pytest.raises(Diverged, match="non-finite"):
        train(cfg)
    rec = json.loads((Path(cfg.paths.run_dir) / "run.json").read_text())
    assert rec["status"] == "diverged" and rec["error"]["step"] >= 0


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A kill (here: an exception) in the middle of writing never leaves a half-written last.ckpt in place."""
    import torch

    from mmfuse.callbacks.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"state": torch.ones(3)}, target)

    def explode(obj, f, *a, **kw):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError):
        io.save_checkpoint({"state": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["state"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_complexity_is_recorded(cfg_factory):
    """FLOPs from the layer formulas of the model (CNN image encoder, MLP tabular encoder, concat, head) on a test
    batch; latency and epoch time are times (only their sign is known); the peak memory is this process's so far."""
    from hydra.utils import instantiate

    from mmfuse.evaluation.complexity import peak_memory_mb
    from mmfuse.models.build import build_model
    from test_complexity import formula_flops

    cfg = cfg_factory("logger=none", "data.modalities=[image,tabular]", "trainer.max_epochs=2")
    rec = train(cfg)
    cost = rec["complexity"]
    dm = instantiate(cfg.data)
    dm.setup("fit")
    batch = next(iter(dm.test_dataloader()))
    assert cost["flops_per_sample"] == formula_flops(build_model(cfg, dm), batch)
    assert cost["latency_batch_size"] == len(batch["label"])
    assert cost["latency_ms_per_sample"] > 0 and cost["train_seconds_per_epoch"] > 0
    assert len(cost["epoch_wall_seconds"]) == 2 and cost["train_seconds_per_epoch"] <= max(cost["epoch_wall_seconds"])
    assert 0 < cost["peak_rss_mb"] <= peak_memory_mb()["peak_rss_mb"]


class StepLosses(pl.Callback):
    """Keeps each optimizer step's (epoch, step, training loss, batch size); built by Hydra from the config."""

    seen: list[tuple[int, int, float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        StepLosses.seen.append(
            (trainer.current_epoch, trainer.global_step - 1, float(outputs["loss"]), len(batch["label"]))
        )


def test_logged_training_loss_is_each_written_steps_loss_and_the_epochs_weighted_mean(cfg_factory):
    """The step loss is logged only on the steps the loggers write (every log_every_n_steps), and those rows hold
    that step's loss; the epoch loss is the sample-weighted mean; the record's history rows hold each epoch's own
    training metrics (callbacks' epoch end runs before the module's)."""
    import csv

    from omegaconf import open_dict

    StepLosses.seen = []
    cfg = cfg_factory("logger=csv", "trainer.max_epochs=3", "trainer.log_every_n_steps=3", "test=false")
    with open_dict(cfg):
        cfg.callbacks.step_losses = {"_target_": f"{__name__}.StepLosses"}
    record = train(cfg)
    assert record["status"] == "completed"
    seen = {step: (epoch, loss, n) for epoch, step, loss, n in StepLosses.seen}
    rows = list(csv.DictReader(open(Path(cfg.paths.run_dir) / "csv" / "metrics.csv")))
    step_rows = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")}
    assert sorted(step_rows) == [s for s in sorted(seen) if (s + 1) % 3 == 0] and len(step_rows) >= 4
    for step, loss in step_rows.items():
        assert loss == pytest.approx(seen[step][1], rel=1e-6), step
    history = record["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2]
    for row in history:
        losses = [(loss, n) for epoch, loss, n in seen.values() if epoch == row["epoch"]]
        mean = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
        assert row["train/loss_epoch"] == pytest.approx(mean, rel=1e-5) and "train/acc" in row
    epoch_rows = [r for r in rows if r.get("train/loss_epoch")]
    assert [float(r["train/loss_epoch"]) for r in epoch_rows] == pytest.approx(
        [row["train/loss_epoch"] for row in history]
    )
    assert [float(r["train/acc"]) for r in epoch_rows] == pytest.approx([row["train/acc"] for row in history])
    assert history[-1]["train/acc"] == record["metrics"]["train/acc"]


class PoisonLastGradient(pl.Callback):
    """Makes one gradient non-finite at the run's last step, after the loss was computed (test only)."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.is_last_batch and trainer.current_epoch == trainer.max_epochs - 1:
            next(p for p in pl_module.parameters() if p.grad is not None).grad.fill_(float("inf"))


def test_a_non_finite_gradient_at_the_last_step_never_reaches_a_checkpoint(cfg_factory):
    """The loss of the last step is finite, its gradient is not: the update makes the weights non-finite, and the
    guard stops the run before they are validated or saved; the checkpoints of the epoch before stay as they were."""
    import torch
    from omegaconf import open_dict

    from mmfuse.callbacks.divergence import Diverged

    cfg = cfg_factory("logger=none", "callbacks=default", "~callbacks.rich_progress_bar", "trainer.max_epochs=2")
    with open_dict(cfg):
        cfg.callbacks.poison = {"_target_": f"{__name__}.PoisonLastGradient"}
    with pytest.raises(Diverged, match="non-finite weights .* before validation"):
        train(cfg)
    run_dir = Path(cfg.paths.run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "diverged" and [row["epoch"] for row in record["history"]] == [0]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(w).all() for w in last["state_dict"].values() if w.is_floating_point())


def test_last_ckpt_holds_the_last_epoch_when_the_monitored_metric_stopped_improving(cfg_factory, tmp_path):
    """Lightning >= 2.6 writes save_last's last.ckpt only at a step that saved a top-k checkpoint; the default
    callbacks write it at every epoch, so a resume continues from the latest epoch, not from the best one."""
    import torch

    from mmfuse.train.components import instantiate_callbacks

    cfg = cfg_factory()
    callbacks = [
        cb
        for cb in instantiate_callbacks(cfg, "multiclass", has_logger=False)
        if isinstance(cb, pl.callbacks.ModelCheckpoint)
    ]

    class Worsening(pl.LightningModule):  # val/acc is best at epoch 0 and falls after
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val/acc", 1.0 - 0.1 * self.current_epoch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(Worsening(), data, data)
    folder = Path(cfg.paths.run_dir) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 2
    assert torch.load(folder / "best.ckpt", weights_only=False)["epoch"] == 0
    assert Path(trainer.checkpoint_callback.best_model_path).name == "best.ckpt"  # the record's best is still best


def test_the_nvml_cuda_check_is_dropped_only_where_nvml_cannot_load(monkeypatch):
    import ctypes
    import os

    from mmfuse.cli.process import drop_a_failing_nvml_check

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        nvml = True
    except OSError:
        nvml = False
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning sets it
    assert drop_a_failing_nvml_check() is (not nvml)
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == ("1" if nvml else None)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "0")  # a user's own setting is left alone
    assert drop_a_failing_nvml_check() is False
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "0"


def test_a_resumed_runs_csv_log_keeps_the_rows_before_the_interruption(tmp_path):
    import csv

    from pytorch_lightning.loggers import CSVLogger

    from mmfuse.train.components import keep_csv_history

    before = CSVLogger(tmp_path, name="csv", version="")
    before.log_metrics({"train/loss": 1.5, "epoch": 0}, step=9)
    before.log_metrics({"val/acc": 0.5, "epoch": 0}, step=9)
    before.save()  # the interrupted run's rows
    resumed = CSVLogger(tmp_path, name="csv", version="")
    assert keep_csv_history(resumed) == 2
    resumed.log_metrics({"train/loss": 1.2, "epoch": 1, "train/acc": 0.7}, step=19)  # a new column too
    resumed.save()
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["train/loss"], r["val/acc"]) for r in rows] == [
        ("0", "1.5", ""),
        ("0", "", "0.5"),
        ("1", "1.2", ""),
    ]
    assert rows[2]["train/acc"] == "0.7"
    assert keep_csv_history(CSVLogger(tmp_path / "elsewhere", name="csv", version="")) == 0  # nothing to keep

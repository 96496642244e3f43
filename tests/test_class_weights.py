"""`model.loss.class_weights`: null (today's loss), balanced (from the training split only) or a list."""
from __future__ import annotations

import csv
import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import open_dict

from conftest import run_cli
from mmfuse.models.build import build_model
from mmfuse.models.class_weights import check_class_weights
from mmfuse.models.fusion_module import UnimodalModule
from mmfuse.models.metrics import loss_fn
from mmfuse.train import train

KEY = "model.loss.class_weights"
UNIMODAL = ["fusion=unimodal", "fusion.modality=tabular", "logger=none", "callbacks=minimal", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "data.batch_size=32"]


def write_manifest(folder: Path, rows: list[tuple], name: str = "m.csv") -> Path:
    """rows: (label, split); two numeric columns that carry some signal about the label."""
    rng = random.Random(0)
    path = folder / name
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "label", "split"])
        for label, split in rows:
            h = sum(map(ord, label))
            w.writerow([round(h % 7 + rng.gauss(0, 2), 3), round(h % 5 + rng.gauss(0, 2), 3), label, split])
    return path


@pytest.fixture
def skewed(tmp_path) -> Path:
    """The training split is 60 a / 30 b / 10 c; validation and test are mostly c, which balanced must ignore."""
    rows = [("a", "train")] * 60 + [("b", "train")] * 30 + [("c", "train")] * 10
    rows += [("c", "val")] * 8 + [("a", "val")] * 2 + [("c", "test")] * 8 + [("b", "test")] * 2
    return write_manifest(tmp_path, rows)


def build(cfg_factory, path: Path, *overrides: str):
    cfg = cfg_factory("data=manifest", f"data.path={path}", *UNIMODAL, *overrides, tiny=False)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return build_model(cfg, dm).eval(), dm  # eval: no dropout, so two forward passes agree


def test_balanced_multiclass_weights_come_from_the_training_split_only(cfg_factory, skewed):
    model, dm = build(cfg_factory, skewed, f"{KEY}=balanced")
    counts = Counter(dm.splits["train"].tensors["label"].tolist())
    assert counts == {0: 60, 1: 30, 2: 10}
    expected = [100 / (3 * counts[k]) for k in range(3)]  # scikit-learn's n / (K * n_k)
    assert model.hparams.loss["class_weights"] == pytest.approx(expected)
    assert torch.allclose(model.class_weights, torch.tensor(expected))
    # the checkpoint's hyperparameters rebuild the same weights
    rebuilt = UnimodalModule(**model.hparams)
    assert torch.equal(rebuilt.class_weights, model.class_weights)


def test_the_weighted_loss_is_each_sample_weighted_by_its_class(cfg_factory, skewed):
    model, dm = build(cfg_factory, skewed, f"{KEY}=[1.0,2.0,5.0]")
    batch = dm.splits["train"][list(range(0, 100, 3))]
    loss, _ = model._shared_step(batch)
    scores = model(batch)
    per_sample = -scores.log_softmax(-1).gather(1, batch["label"][:, None]).squeeze(1)
    w = torch.tensor([1.0, 2.0, 5.0])[batch["label"]]
    assert torch.allclose(loss, (w * per_sample).sum() / w.sum())
    assert not torch.allclose(loss, per_sample.mean())


def test_null_is_the_unweighted_loss_bit_for_bit():
    scores, target = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 4
    assert torch.equal(loss_fn("multiclass", scores, target, label_smoothing=0.1),
                       F.cross_entropy(scores, target, label_smoothing=0.1))
    multi_hot = (torch.rand(16, 4, generator=torch.Generator().manual_seed(1)) < 0.3).long()
    assert torch.equal(loss_fn("multilabel", scores, multi_hot),
                       F.binary_cross_entropy_with_logits(scores, multi_hot.float()))


def test_null_and_an_older_config_without_the_key_train_to_identical_numbers(cfg_factory):
    quick = ["logger=none", "trainer.enable_progress_bar=false", "evaluation.robustness=false"]
    new = cfg_factory(*quick)
    assert new.model.loss.class_weights is None
    old = cfg_factory(*quick)
    with open_dict(old):
        del old.model.loss["class_weights"]  # as in a snapshot written before the key existed
    a, b = train(new), train(old)
    assert a["metrics"] and a["metrics"] == b["metrics"] and a["history"] == b["history"]
    assert a["loss"] == {"label_smoothing": 0.0, "class_weights": None} and b["loss"] == {"label_smoothing": 0.0}


def test_multilabel_balanced_is_the_pos_weight_negatives_over_positives(cfg_factory, tmp_path):
    labels = ["a"] * 30 + ["a|b"] * 10 + ["c"] * 20 + ["b|c"] * 20
    rows = [(lab, "train") for lab in labels] + [("a|b|c", "val")] * 5 + [("a", "test")] * 5
    model, dm = build(cfg_factory, write_manifest(tmp_path, rows), f"{KEY}=balanced")
    assert dm.task == "multilabel"
    positives = dm.splits["train"].tensors["label"].sum(0).double()
    assert positives.tolist() == [40, 30, 40]
    expected = ((80 - positives) / positives).tolist()  # negatives / positives per label: 1, 5/3, 1
    assert model.hparams.loss["class_weights"] == pytest.approx(expected)
    batch = dm.splits["train"][list(range(0, 80, 2))]
    loss, _ = model._shared_step(batch)
    x, y, pw = model(batch), batch["label"].float(), torch.tensor(expected, dtype=torch.float32)
    by_hand = -(pw * y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean()
    assert torch.allclose(loss, by_hand)


def test_a_class_absent_from_the_training_split_has_no_balanced_weight(cfg_factory, tmp_path):
    rows = [("a", "train")] * 20 + [("b", "train")] * 10 + [("c", "val")] * 3 + [("c", "test")] * 3
    path = write_manifest(tmp_path, rows)
    with pytest.raises(ValueError, match=rf"{KEY}=balanced: class\(es\) 'c' never occur in the training split"):
        build(cfg_factory, path, f"{KEY}=balanced")
    model, _ = build(cfg_factory, path, f"{KEY}=[1,2,3]")  # a list is the way out
    assert model.hparams.loss["class_weights"] == [1.0, 2.0, 3.0]


def test_regression_refuses_class_weights(cfg_factory, tmp_path):
    rows = [(f"{v / 10}", s) for v, s in zip(range(40), ["train"] * 30 + ["val"] * 5 + ["test"] * 5)]
    path = write_manifest(tmp_path, rows)
    for value in ("balanced", "[1.0]"):
        with pytest.raises(ValueError, match=rf"{KEY}=.*: a regression task has no classes to weight; expected null"):
            build(cfg_factory, path, "data.task=regression", f"{KEY}={value}")
    model, _ = build(cfg_factory, path, "data.task=regression")
    assert model.class_weights is None


@pytest.mark.parametrize("value", [[1.0, 2.0], [1.0, 0.0, 2.0], [1.0, -1.0, 2.0], [1.0, math.nan, 1.0],
                                   [1.0, math.inf, 1.0], [1, True, 1], "heavy", 3.0])
def test_bad_weights_are_one_clear_error(value):
    with pytest.raises(ValueError) as caught:
        check_class_weights(value, "multiclass", 3)
    assert str(caught.value).startswith(f"{KEY}=") and \
        "expected null, balanced or a list of 3 positive finite numbers (one per class)" in str(caught.value)


def test_a_run_records_the_resolved_weights_and_its_checkpoint_rebuilds_them(cfg_factory, skewed):
    cfg = cfg_factory("data=manifest", f"data.path={skewed}", *UNIMODAL, f"{KEY}=balanced", tiny=False)
    record = train(cfg)
    expected = [100 / (3 * 60), 100 / (3 * 30), 100 / (3 * 10)]
    assert record["status"] == "completed" and record["loss"]["class_weights"] == pytest.approx(expected)
    model = UnimodalModule.load_from_checkpoint(record["best"]["checkpoint"], map_location="cpu", weights_only=True)
    assert model.class_weights.tolist() == pytest.approx(expected)


def test_a_wrong_list_is_refused_on_the_command_line_before_training(tmp_path):
    result = run_cli("train", f"paths.output_dir={tmp_path}", "logger=none", "callbacks=minimal", "data.n_samples=300",
                     "trainer.max_epochs=1", f"{KEY}=[1,2]")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{KEY}=[1, 2]: expected null, balanced or a list of 4 positive finite numbers" in result.stderr
    (record,) = list(tmp_path.rglob("run.json"))
    assert '"fit_seconds"' not in record.read_text()  # refused before training

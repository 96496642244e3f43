"""A user's own DataModule: subclass MultimodalDataModule, keep its contract, and `mmfuse train` runs it end to end."""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import compose_config
from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.readers import non_finite_rows
from mmfuse.data.spec import ModalitySpec
from mmfuse.train import train


class NoisyDigits(MultimodalDataModule):
    """The label written into a small image and a vector, plus noise; sample 5 holds a NaN (a bad sample)."""

    name = "noisy_digits"
    num_classes = 3

    def __init__(self, n: int = 120, **settings):
        super().__init__(**settings)
        self.n = n

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        return {"image": ModalitySpec("image", (1, 8, 8)), "tabular": ModalitySpec("tabular", (4,))}

    def fingerprint_params(self) -> dict:
        return {"name": self.name, "n": self.n}

    def build_splits(self) -> dict[str, TensorDictDataset]:
        g = torch.Generator().manual_seed(0)
        y = torch.arange(self.n) % self.num_classes
        image = torch.randn(self.n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1)
        tabular = torch.randn(self.n, 4, generator=g) + y[:, None]
        tabular[5, 0] = float("nan")
        keep = torch.ones(self.n, dtype=torch.bool)
        for i in non_finite_rows(tabular).nonzero().flatten().tolist():
            self.errors("non_finite", f"sample {i}: its vector holds NaN")  # raises, or skips and counts
            keep[i] = False
        full = TensorDictDataset({"image": image, "tabular": tabular, "label": y,
                                  "present": torch.ones(self.n, 2, dtype=torch.bool)}).subset(keep.nonzero().flatten())
        third = len(full) // 3
        index = torch.arange(len(full))
        return {"train": full.subset(index[third:]), "val": full.subset(index[:third // 2]),
                "test": full.subset(index[third // 2:third])}


def user_config(tmp_path, on_error: str):
    """The train config with `data` pointed at the class above and its own arguments (as a data/<name>.yaml would)."""
    cfg = compose_config(["fusion=concat", "trainer.max_epochs=1", "callbacks=minimal", "logger=none",
                          "trainer.enable_progress_bar=false", "evaluation.robustness=false"], tmp_path / "run",
                         tiny=False)
    with open_dict(cfg):
        cfg.data = OmegaConf.create({"_target_": f"{__name__}.NoisyDigits", "n": 120, "on_error": on_error,
                                     "batch_size": 16, "seed": "${seed}"})
    return cfg


def test_a_user_datamodule_trains_through_train_and_inherits_the_error_policy(tmp_path):
    record = train(user_config(tmp_path, "skip"))
    assert record["status"] == "completed", record.get("error")
    assert record["data"]["name"] == "noisy_digits" and record["data"]["num_classes"] == 3
    assert record["data"]["sizes"] == {"train": 80, "val": 19, "test": 20}  # 119 samples after the skipped one
    assert record["data_skipped"] == {"non_finite": 1}
    assert record["data_fingerprint"] == NoisyDigits(on_error="skip").fingerprint()
    assert record["data_fingerprint"] != NoisyDigits(n=90, on_error="skip").fingerprint()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data_skipped"] == {"non_finite": 1}


def test_a_user_datamodule_raises_on_a_bad_sample_by_default():
    with pytest.raises(ValueError, match=r"sample 5: its vector holds NaN \(data.on_error=skip skips such samples"):
        NoisyDigits().setup()
    with pytest.raises(ValueError, match=r"data.on_error='ignore'; expected one of \['raise', 'skip'\]"):
        NoisyDigits(on_error="ignore")
    dm = NoisyDigits(batch_size=7)
    assert (dm.batch_size, dm.eval_batch_size, dm.default_batch_size) == (7, 7, 128)

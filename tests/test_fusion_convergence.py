"""Each strategy proven on the synthetic benchmark: synergy separates the strategies that model
cross-modal interactions from those that cannot; with redundant modalities every strategy learns."""
from __future__ import annotations

import pytest

from mmfuse.train import train

CHANCE = 0.25  # num_classes=4
COMMON = [
    "logger=none",
    "evaluation.robustness=false",
    "data.modalities=[image,tabular]",
    "trainer.enable_progress_bar=false",
    "data.num_classes=4",
]
SYNERGY = [*COMMON, "data.interaction=synergy", "data.n_samples=3000", "trainer.max_epochs=8"]
REDUNDANT = [*COMMON, "data.interaction=redundant", "data.n_samples=1500", "trainer.max_epochs=3"]
FUSIONS = ["early", "concat", "late", "tensor", "lowrank", "mi", "gated", "film", "attention", "transformer"]


def test_acc(cfg_factory, *overrides) -> float:
    return train(cfg_factory(*overrides, tiny=False))["metrics"]["test/acc"]


test_acc.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("fusion", ["unimodal_image", "unimodal_tabular", "late"])
def test_synergy_defeats_unimodal_and_late_fusion(cfg_factory, fusion):
    acc = test_acc(cfg_factory, *SYNERGY, f"fusion={fusion}")
    assert abs(acc - CHANCE) <= 0.10, f"{fusion} reached {acc:.3f} on synergy; chance is {CHANCE}"


@pytest.mark.parametrize("fusion", ["concat", "tensor", "lowrank", "transformer"])
def test_synergy_is_learned_by_interaction_modelling_fusions(cfg_factory, fusion):
    acc = test_acc(cfg_factory, *SYNERGY, f"fusion={fusion}")
    assert acc >= 0.90, f"{fusion} reached only {acc:.3f} on synergy"


@pytest.mark.parametrize("fusion", [*FUSIONS, "unimodal_image", "unimodal_tabular"])
def test_every_strategy_learns_redundant_data(cfg_factory, fusion):
    acc = test_acc(cfg_factory, *REDUNDANT, f"fusion={fusion}")
    assert acc >= 0.90, f"{fusion} reached only {acc:.3f} on redundant data"

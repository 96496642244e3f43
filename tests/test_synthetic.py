"""The synthetic benchmark is a scientific instrument: test its promises."""
from __future__ import annotations

import pytest
import torch

from mmfuse.data.synthetic import MODALITIES, SyntheticDataModule


def make(**kw) -> SyntheticDataModule:
    dm = SyntheticDataModule(**{"n_samples": 3000, **kw})
    dm.setup()
    return dm


def test_batch_contract_and_specs():
    dm = make(interaction="mixed")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"label", "present", "text_mask", *MODALITIES}
    b = len(batch["label"])
    assert batch["present"].shape == (b, 4) and batch["present"].dtype == torch.bool and batch["present"].all()
    for name, spec in dm.modalities.items():
        assert tuple(batch[name].shape[1:]) == spec.shape, name
    assert batch["text"].dtype == torch.int64 and int(batch["text"].max()) < dm.modalities["text"].vocab_size
    # padding: tokens are 0 exactly where the mask is False, and lengths vary
    assert torch.equal(batch["text"] == 0, ~batch["text_mask"])
    assert batch["text_mask"].sum(1).unique().numel() > 3
    assert batch["label"].min() >= 0 and batch["label"].max() < dm.num_classes


def test_any_subset_of_modalities():
    dm = make(modalities=["audio", "tabular"], audio_representation="spectrogram")
    assert list(dm.modalities) == ["audio", "tabular"]
    assert len(dm.modalities["audio"].shape) == 3
    assert dm.splits["train"].tensors["present"].shape[1] == 2


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = make(data_seed=3), make(data_seed=3), make(data_seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    for key in a.splits["train"].tensors:
        assert torch.equal(a.splits["train"].tensors[key], b.splits["train"].tensors[key])


def test_splits_do_not_overlap_and_sizes_follow_fractions():
    dm = make(n_samples=1000, split=[0.6, 0.2, 0.2])
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 600, "val": 200, "test": 200}


def _conditional_label_spread(y: torch.Tensor, z: torch.Tensor, k: int) -> float:
    """Largest |P(y | z) - 1/K| over levels z: 0 when z says nothing about y."""
    worst = 0.0
    for level in z.unique():
        sel = y[z == level]
        freq = torch.bincount(sel, minlength=k).float() / len(sel)
        worst = max(worst, float((freq - 1 / k).abs().max()))
    return worst


@pytest.mark.parametrize("n_modalities", [2, 3, 4])
def test_synergy_single_modality_latents_carry_no_label_information(n_modalities):
    dm = SyntheticDataModule(modalities=list(MODALITIES[:n_modalities]), interaction="synergy", n_samples=20_000)
    y, z = dm.latent_levels(torch.Generator().manual_seed(0))
    for m in range(n_modalities):
        assert _conditional_label_spread(y, z[:, m], dm.num_classes) < 0.03
    # ... while all modalities together determine the label exactly
    assert torch.equal(z.sum(1) % dm.num_classes, y)


def test_redundant_and_unique_latents():
    dm = SyntheticDataModule(modalities=["image", "tabular"], interaction="redundant", n_samples=2000)
    y, z = dm.latent_levels(torch.Generator().manual_seed(0))
    assert torch.equal(z[:, 0], y) and torch.equal(z[:, 1], y)
    dm = SyntheticDataModule(modalities=["image", "tabular"], interaction="unique", num_classes=4, n_samples=2000)
    y, z = dm.latent_levels(torch.Generator().manual_seed(0))
    assert torch.equal(z[:, 0] + dm.base * z[:, 1], y)  # each modality holds one digit of the label
    assert _conditional_label_spread(y, z[:, 0], 4) > 0.2  # each digit alone is informative


def test_synergy_inputs_alone_are_at_chance():
    """A nearest-class-mean classifier on one modality's raw input stays at chance under synergy
    but is near perfect under redundancy (so the test can fail)."""
    def nearest_mean_accuracy(dm, modality):
        tr, te = dm.splits["train"].tensors, dm.splits["test"].tensors
        x_tr, x_te = tr[modality].flatten(1), te[modality].flatten(1)
        means = torch.stack([x_tr[tr["label"] == c].mean(0) for c in range(dm.num_classes)])
        pred = torch.cdist(x_te, means).argmin(1)
        return float((pred == te["label"]).float().mean())

    syn = make(modalities=["image", "tabular"], interaction="synergy", n_samples=6000)
    red = make(modalities=["image", "tabular"], interaction="redundant", n_samples=6000)
    for m in ("image", "tabular"):
        assert abs(nearest_mean_accuracy(syn, m) - 1 / syn.num_classes) < 0.05
        assert nearest_mean_accuracy(red, m) > 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modalities": ["video"]}, "data.modalities"),
        ({"interaction": "xor"}, "data.interaction"),
        ({"interaction": "synergy", "modalities": ["image"]}, "at least 2 modalities"),
        ({"split": [0.5, 0.5, 0.5]}, "data.split"),
        ({"num_classes": 1}, "data.num_classes"),
        ({"noise": {"image": -1.0}}, "data.noise"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticDataModule(**kwargs)

"""FusionModule / UnimodalModule behaviour that training alone would not reveal."""
from __future__ import annotations

import torch
from hydra.utils import instantiate

from mmfuse.models.build import build_model
from mmfuse.models.fusion_module import UnimodalModule, drop_modalities


def test_modality_dropout_never_drops_every_modality_and_keeps_its_rate():
    g = torch.Generator().manual_seed(0)
    present = torch.ones(20_000, 3, dtype=torch.bool)
    present[::4, 1] = False  # some modalities already missing
    kept = drop_modalities(present, 0.5, generator=g)
    assert kept.any(1).all()
    assert not (kept & ~present).any()  # never resurrects a missing modality
    observed = present.sum().item()
    dropped = (present & ~kept).sum().item() / observed
    assert 0.35 < dropped < 0.5  # p, less the modalities kept so that none is left empty


def test_modality_dropout_is_applied_only_in_training(cfg_factory):
    cfg = cfg_factory("model.modality_dropout=0.9", "data.modalities=[image,tabular]", "fusion=concat")
    dm = instantiate(cfg.data)
    dm.setup()
    model = build_model(cfg, dm)
    batch = next(iter(dm.val_dataloader()))
    model.eval()
    with torch.no_grad():
        a, b = model(batch), model(batch)
    torch.testing.assert_close(a, b)
    assert model.hparams.modality_dropout == 0.9


def test_unimodal_module_builds_one_encoder_and_ignores_other_modalities(cfg_factory):
    cfg = cfg_factory("fusion=unimodal_tabular", "data.modalities=[image,tabular]", "data.interaction=redundant")
    dm = instantiate(cfg.data)
    dm.setup()
    model = build_model(cfg, dm).eval()
    assert isinstance(model, UnimodalModule) and list(model.encoders) == ["tabular"]
    batch = next(iter(dm.val_dataloader()))
    other = dict(batch, image=torch.randn_like(batch["image"]))
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(other))
        # without its modality, it predicts the same for every sample (the head's bias path)
        missing = dict(batch, present=torch.tensor([[True, False]]).expand(len(batch["label"]), 2))
        out = model(missing)
    assert torch.allclose(out, out[:1].expand_as(out))


def test_every_parameter_of_a_fused_model_trains(cfg_factory):
    """A whole model (encoders + fusion + head) gets a gradient on every parameter."""
    for fusion in ("concat", "lowrank", "transformer", "late", "early"):
        cfg = cfg_factory(f"fusion={fusion}")
        dm = instantiate(cfg.data)
        dm.setup()
        model = build_model(cfg, dm)
        batch = next(iter(dm.train_dataloader()))
        present = batch["present"].clone()
        for k in range(present.shape[1]):  # each modality missing somewhere: exercise "missing" paths too
            present[k :: present.shape[1] + 1, k] = False
        batch["present"] = present
        loss = torch.nn.functional.cross_entropy(model(batch), batch["label"])
        loss.backward()
        dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not dead, f"{fusion}: no gradient for {dead}"

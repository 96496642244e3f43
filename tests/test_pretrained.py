"""Pretrained encoders: offline weights only, clear errors, frozen embeddings computed once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import require_module
from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.pretrained import HFTextEncoder, ResNet18Encoder
from mmfuse.train import train

IMAGE = ModalitySpec("image", (1, 28, 28))


def test_resnet18_loads_weights_from_a_local_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    enc = ResNet18Encoder(IMAGE, out_dim=16, weights=str(path))
    assert torch.equal(enc.backbone.conv1.weight, reference.conv1.weight)
    x = torch.randn(2, 1, 28, 28)
    assert enc(x).shape == (2, 16)
    tokens, mask = enc.tokens(x)
    assert tokens.shape[0] == 2 and tokens.shape[2] == 16 and mask.all()


def test_missing_weights_name_the_file_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"hub/checkpoints/resnet18-.*\.pth does not exist"):
        ResNet18Encoder(IMAGE, weights="IMAGENET1K_V1")
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        ResNet18Encoder(IMAGE, weights=str(tmp_path / "nope.pth"))


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval_mode():
    enc = ResNet18Encoder(IMAGE, out_dim=8, freeze=True).train()
    assert not enc.backbone.training and enc.project.training
    enc(torch.randn(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for p in enc.backbone.parameters()) and enc.project.weight.grad is not None


def test_frozen_encoder_embeddings_are_computed_once_and_used(cfg_factory, monkeypatch):
    cfg = cfg_factory("encoder/image=resnet18", "encoder.image.freeze=true", "data.modalities=[image,tabular]",
                      "data.interaction=redundant", "logger=none", "data.n_samples=200", "data.image_size=28",
                      "evaluation.robustness=false")  # robustness re-encodes corrupted images on purpose
    calls = []
    original = ResNet18Encoder.forward
    monkeypatch.setattr(
        ResNet18Encoder, "forward", lambda self, x, mask=None: calls.append(len(x)) or original(self, x, mask)
    )
    rec = train(cfg)
    assert rec["status"] == "completed"
    # one pass over each split's images (train 140, val 30, test 30), none while training or testing
    assert sum(calls) == 200


def test_hf_encoder_names_the_missing_model_folder_and_the_missing_extra(tmp_path, monkeypatch):
    spec = ModalitySpec("text", (16,), dtype="int64", vocab_size=64, has_mask=True)
    require_module("transformers", "transformers (the [hf] extra)")
    missing = tmp_path / "no_model"
    with pytest.raises(FileNotFoundError, match=f"encoder.text.model_dir={missing}: no Hugging Face model there"):
        HFTextEncoder(spec, model_dir=str(missing))
    monkeypatch.setitem(sys.modules, "transformers", None)  # as in an environment without the [hf] extra
    with pytest.raises(ImportError, match=r"encoder/text=hf needs the optional \[hf\] extra"):
        HFTextEncoder(spec, model_dir=str(missing))


def tiny_hf_model(folder: Path) -> Path:
    """A 2-layer BERT with a 40-token WordPiece vocabulary, saved like a Hugging Face model directory."""
    transformers = require_module("transformers", "transformers (the [hf] extra)")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the a cat dog sat ran on mat fast slow red blue".split()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_hf_encoder_runs_a_local_model_on_its_tokenizers_ids(tmp_path):
    from transformers import AutoTokenizer

    model_dir = tiny_hf_model(tmp_path / "bert")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    batch = tok(["the cat sat", "a dog ran on the mat fast"], padding="max_length", max_length=12, return_tensors="pt")
    spec = ModalitySpec(
        "text", (12,), dtype="int64", vocab_size=tok.vocab_size, has_mask=True, extra={"tokenizer": str(model_dir)}
    )
    enc = HFTextEncoder(spec, model_dir=str(model_dir), out_dim=8, freeze=True).train()
    out = enc(batch["input_ids"], batch["attention_mask"].bool())
    assert out.shape == (2, 8) and not enc.backbone.training
    # padding does not change a sample's embedding
    shorter = tok(["the cat sat"], padding="max_length", max_length=12, return_tensors="pt")
    torch.testing.assert_close(
        enc(shorter["input_ids"], shorter["attention_mask"].bool())[0], out[0], atol=1e-5, rtol=0
    )
    wrong = ModalitySpec("text", (12,), dtype="int64", vocab_size=64, has_mask=True)
    with pytest.raises(ValueError, match="same tokenizer"):
        HFTextEncoder(wrong, model_dir=str(model_dir))

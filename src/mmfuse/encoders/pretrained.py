"""Pretrained encoders: torchvision's ResNet-18 and a local Hugging Face text model.

Weights never come from the network at run time: a ResNet-18 checkpoint is
read from a file or from torch's hub cache, a Hugging Face model from a local
directory. Asking for weights that are not there is a clear error naming the
file looked for. With `freeze=true` the backbone is not trained and stays in
eval mode, and the FusionModule computes its embeddings once per data split
(see mmfuse.models.frozen) instead of every epoch.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.base import Encoder, require_kind

TORCHVISION_WEIGHTS = ("IMAGENET1K_V1",)


def resnet18_state_dict(weights: str) -> dict[str, torch.Tensor]:
    """A ResNet-18 state dict from a file path, or from torch's hub cache for a torchvision weights name."""
    if weights in TORCHVISION_WEIGHTS:
        from torchvision.models import ResNet18_Weights

        url = ResNet18_Weights[weights].url
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        hint = f"download {url} to that path on a machine with a network, or pass encoder.image.weights=<file>"
    else:
        path = Path(weights)
        hint = "pass an existing .pth file, or weights=null for random initialisation"
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights not available offline: {path} does not exist; {hint}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class FrozenMixin:
    """A frozen backbone gets no gradient and keeps its normalisation statistics."""

    frozen: bool = False
    backbone: nn.Module

    def freeze_backbone(self, freeze: bool) -> None:
        self.frozen = freeze
        for p in self.backbone.parameters():
            p.requires_grad_(not freeze)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self


class ResNet18Encoder(FrozenMixin, Encoder):
    """torchvision ResNet-18 trunk -> 512-d features -> linear projection to out_dim.

    Single-channel images are repeated to three channels so that pretrained
    first-layer filters apply; tokens are the final feature map's positions.
    """

    def __init__(self, spec: ModalitySpec, out_dim: int = 128, weights: str | None = None, freeze: bool = False):
        super().__init__(spec, out_dim)
        require_kind(spec, ("image",), "ResNet18Encoder")
        if spec.shape[0] not in (1, 3):
            raise ValueError(f"ResNet18Encoder takes 1- or 3-channel images, got shape {spec.shape}")
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if weights:
            net.load_state_dict(resnet18_state_dict(str(weights)))
        net.fc = nn.Identity()
        self.backbone = net
        self.project = nn.Linear(512, out_dim)
        self.freeze_backbone(freeze)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        n = self.backbone
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def tokens(self, x, mask=None):
        fmap = self.project(self._trunk(x).flatten(2).transpose(1, 2))
        return fmap, torch.ones(fmap.shape[:2], dtype=torch.bool, device=fmap.device)

    def forward(self, x, mask=None):
        return self.project(self._trunk(x).mean((2, 3)))

    def encode(self, x, mask=None):
        fmap = self._trunk(x)
        tokens = self.project(fmap.flatten(2).transpose(1, 2))
        return self.project(fmap.mean((2, 3))), tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)


class HFTextEncoder(FrozenMixin, Encoder):
    """A local Hugging Face encoder (e.g. all-MiniLM-L6-v2) over token ids from the same tokenizer.

    The data set must tokenise with that model's tokenizer (the modality
    spec's `extra["tokenizer"]`); pooled output is the masked mean of the last
    hidden states, projected to out_dim.
    """

    def __init__(self, spec: ModalitySpec, model_dir: str, out_dim: int = 128, freeze: bool = True):
        super().__init__(spec, out_dim)
        require_kind(spec, ("text",), "HFTextEncoder")
        try:
            from transformers import AutoModel
        except ImportError:
            raise ImportError("encoder/text=hf needs the optional [hf] extra: pip install -e '.[hf]'") from None
        path = Path(str(model_dir))
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"encoder.text.model_dir={model_dir}: no Hugging Face model there ({path / 'config.json'} does not "
                f"exist)"
            )
        tokenizer = spec.extra.get("tokenizer")
        if tokenizer is None or Path(tokenizer).resolve() != path.resolve():
            raise ValueError(
                f"encoder/text=hf with model_dir={model_dir} needs token ids from the same tokenizer, but the data "
                f"set tokenised with {tokenizer or 'its own vocabulary'}; set the data set's tokenizer to {model_dir}"
            )
        self.backbone = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.project = nn.Linear(self.backbone.config.hidden_size, out_dim)
        self.freeze_backbone(freeze)

    def tokens(self, x, mask=None):
        mask = (x != 0) if mask is None else mask.bool()
        hidden = self.backbone(input_ids=x, attention_mask=mask.long()).last_hidden_state
        return self.project(hidden), mask

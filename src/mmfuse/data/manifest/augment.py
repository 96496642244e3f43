"""Train-time image augmentation, drawn per sample and applied to a whole batch at once.

torchvision's random transforms draw one set of parameters per call, i.e. per batch; here every sample gets its own
offset and flip, vectorised over the batch.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from mmfuse.data.batches import TensorDictDataset


class RandomCropFlip:
    """Train-time image augmentation on a batch (B, C, H, W), with its own random draw per sample.

    Pads by `padding` pixels with the (normalised) value of black, then crops
    back to H x W at a random offset; flips horizontally with probability 1/2.
    Uses torch's global generator, which the run's seed fixes.
    """

    def __init__(self, key: str, padding: int, hflip: bool, fill: torch.Tensor):
        self.key, self.padding, self.hflip = key, int(padding), bool(hflip)
        self.fill = fill.reshape(1, -1, 1, 1)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.key]
        b, c, h, w = x.shape
        if self.padding > 0:
            p = self.padding
            padded = F.pad(x - self.fill, (p, p, p, p)) + self.fill
            dy = torch.randint(0, 2 * p + 1, (b, 1, 1, 1))
            dx = torch.randint(0, 2 * p + 1, (b, 1, 1, 1))
            rows = dy + torch.arange(h).view(1, 1, h, 1)
            cols = dx + torch.arange(w).view(1, 1, 1, w)
            x = padded[torch.arange(b).view(b, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]
        if self.hflip:
            flip = torch.rand(b) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
        return {**batch, self.key: x}


class AugmentedDataset(TensorDictDataset):
    """A TensorDictDataset whose batches pass through `augment` (used for the training split only)."""

    def __init__(self, tensors: dict[str, torch.Tensor], augment: Callable[[dict], dict]):
        super().__init__(tensors)
        self.augment = augment

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        return self.augment(super().__getitem__(index))

    def subset(self, index: torch.Tensor) -> "AugmentedDataset":
        return AugmentedDataset({k: v[index] for k, v in self.tensors.items()}, self.augment)

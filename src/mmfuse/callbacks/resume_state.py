"""What Lightning does not checkpoint but an exact resume needs: the global torch RNG and the sampler's generator."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

KEY = "mmfuse_resume_state"


def _train_generator(trainer: pl.Trainer) -> torch.Generator | None:
    loader = trainer.train_dataloader
    sampler = getattr(getattr(loader, "sampler", None), "sampler", None) or getattr(loader, "sampler", None)
    return getattr(sampler, "generator", None)


class ResumeState(pl.Callback):
    """Saves in every checkpoint, and restores on resume, the random state that Lightning does not checkpoint."""

    def __init__(self):
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        generator = _train_generator(trainer)
        checkpoint[KEY] = {
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": generator.get_state() if generator is not None else None,
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(KEY)
        if self._pending:
            # now, not at epoch start: the next epoch's DataLoader iterator draws its base seed from this RNG
            # before on_train_epoch_start runs, as it did right after the checkpoint was saved
            torch.set_rng_state(self._pending["torch_rng"])

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # before the sampler draws this epoch's order
        state, self._pending = self._pending, None
        generator = _train_generator(trainer)
        if state and generator is not None and state.get("sampler_rng") is not None:
            generator.set_state(state["sampler_rng"])

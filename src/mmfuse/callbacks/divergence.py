"""A diverging run stops cleanly: a non-finite loss or weights end it with status `diverged`."""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch


class Diverged(RuntimeError):
    """A non-finite loss or weights (a non-finite gradient): the run ends with status `diverged`."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class DivergenceGuard(pl.Callback):
    """Stops training at the first non-finite training loss, and before non-finite weights are validated or saved.

    A non-finite gradient makes the weights it updates non-finite (clipping scales every gradient by max_norm / inf
    or NaN), so the next step's loss is non-finite. Checking the loss each step, and the weights where they would
    reach a validation pass, a checkpoint or the end of training, catches a bad gradient without a gradient norm of
    its own every step (Lightning's clipping computes one; a second cost 0.9 ms a step in the overhead benchmark,
    0.7 % of a synthetic step): a checkpoint written before the divergence is never replaced by one with non-finite
    weights.
    """

    def __init__(self):
        self._checked_step: int | None = None  # the global step whose weights were found finite

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = None if loss is None else loss.item()  # a scalar (Lightning's automatic optimisation needs one)
        if value is not None and not math.isfinite(value):
            raise Diverged(f"non-finite training loss ({value:.3g}) at step {trainer.global_step}", trainer.global_step)

    def _check_weights(self, trainer, pl_module, before: str) -> None:
        if trainer.global_step == self._checked_step:
            return  # the weights change only at an optimizer step: checked already (validation, then its checkpoints)
        params = list(pl_module.named_parameters())
        if not params or bool(torch.cat([p.detach().reshape(-1) for _, p in params]).isfinite().all()):
            self._checked_step = trainer.global_step
            return  # one copy and one check (a check per tensor cost about 5 ms)
        bad = [name for name, p in params if not torch.isfinite(p.detach()).all()]
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise Diverged(f"non-finite weights ({bad[0]}{more}; a non-finite gradient) at step {trainer.global_step}, "
                       f"before {before}", trainer.global_step)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._check_weights(trainer, pl_module, "validation")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._check_weights(trainer, pl_module, "writing a checkpoint")

    def on_train_end(self, trainer, pl_module) -> None:
        self._check_weights(trainer, pl_module, "the end of training")

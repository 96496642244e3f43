"""Training guards: divergence stops a run cleanly, Ctrl-C leaves a last.ckpt, checkpoints are written atomically."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class Diverged(RuntimeError):
    """A non-finite loss or gradient: the run ends with status `diverged`."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temp file in the same folder, then rename: a kill mid-write never replaces a good checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class DivergenceGuard(pl.Callback):
    """Stops training at the first non-finite loss or gradient norm."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss.detach()).all():
            raise Diverged(f"non-finite training loss ({float(loss):.3g}) at step {trainer.global_step}", trainer.global_step)

    def on_train_start(self, trainer, pl_module) -> None:
        # walking the module tree for its parameters every step costs more than the norm itself
        self._params = [p for p in pl_module.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad.detach() for p in self._params if p.grad is not None]
        if grads:
            # one fused kernel per dtype/device group (what clip_grad_norm_ uses) instead of one per tensor
            norm = float(torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(grads)])))
            if not math.isfinite(norm):
                raise Diverged(f"non-finite gradient norm at step {trainer.global_step}", trainer.global_step)


class InterruptCheckpoint(pl.Callback):
    """On Ctrl-C, Lightning finishes the step and stops; save last.ckpt so the run can resume."""

    def __init__(self, dirpath: Path):
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.dirpath / "last.ckpt")

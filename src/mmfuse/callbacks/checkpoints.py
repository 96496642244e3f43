"""Checkpoints that survive a kill: written atomically, and a last.ckpt on Ctrl-C so the run can resume."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import OnExceptionCheckpoint


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


class InterruptCheckpoint(OnExceptionCheckpoint):
    """On Ctrl-C, Lightning finishes the step and stops; save last.ckpt so the run can resume.

    Lightning's OnExceptionCheckpoint saves on every exception and deletes its file at teardown (Lightning 2.6);
    a diverged run (non-finite weights) or a crash must not replace the last good last.ckpt, so only an interrupt
    saves, and the file stays: it is the point a resume starts from.
    """

    def __init__(self, dirpath: str | Path):
        super().__init__(dirpath=str(dirpath), filename="last")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            super().on_exception(trainer, pl_module, exception)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        pass

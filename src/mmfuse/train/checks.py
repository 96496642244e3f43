"""Config values that would only fail (or silently misbehave) deep inside training, named with their key."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mmfuse.training_checks import check_targets


def _expect(
    cfg: DictConfig, key: str, kind: type | tuple, allowed: str, ok=lambda v: True, nullable: bool = True
) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ValueError(f"{key}={value!r}: expected {allowed}")


def validate_config(cfg: DictConfig) -> None:
    """Values that would only fail (or silently misbehave) deep inside training, named with their key."""
    _expect(cfg, "seed", int, "an integer in [0, 4294967295] or null", lambda v: 0 <= v <= 2**32 - 1)  # numpy's range
    _expect(cfg, "threads", int, "an integer >= 1 or null", lambda v: v >= 1)
    _expect(cfg, "trainer.max_epochs", int, "an integer >= 1 (or -1 for no limit)", lambda v: v >= 1 or v == -1)
    _expect(cfg, "model.optimizer.lr", (int, float), "a number > 0", lambda v: v > 0)
    _expect(cfg, "model.optimizer.weight_decay", (int, float), "a number >= 0", lambda v: v >= 0)
    _expect(cfg, "model.modality_dropout", (int, float), "a number in [0, 1)", lambda v: 0 <= v < 1)
    _expect(cfg, "trainer.gradient_clip_val", (int, float), "a number > 0 or null", lambda v: v > 0)
    _expect(cfg, "data.batch_size", int, "an integer >= 1", lambda v: v >= 1)
    check_targets(cfg)
    check_start_checkpoint(cfg)


def check_start_checkpoint(cfg: DictConfig) -> None:
    """ckpt_path exists and, unless trust_checkpoint=true, holds only weights and plain data (weights_only=True)."""
    path = cfg.get("ckpt_path")
    if not path or cfg.get("resume"):
        return
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    if cfg.get("trust_checkpoint"):
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling refused, truncated, not a checkpoint
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(
            f"ckpt_path={path} cannot be loaded as weights only ({first}); if it is a checkpoint whose "
            "origin you trust, add trust_checkpoint=true"
        ) from None

"""Frozen encoders: compute their embeddings once per data split instead of every epoch."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)
SUFFIX = "__embedding"


def frozen_modalities(model) -> list[str]:
    """Modalities whose encoder is frozen and whose pooled embedding is all the fusion needs."""
    if model.fusion.wants_tokens or model.fusion.uses_raw_inputs:
        return []
    return [m for m, enc in model.encoders.items() if getattr(enc, "frozen", False)]


@torch.no_grad()
def precompute_frozen_embeddings(model, datamodule, batch_size: int = 256) -> list[str]:
    """Adds `<modality>__embedding` tensors to every split; FusionModule uses them instead of the encoder."""
    modalities = frozen_modalities(model)
    for m in modalities:
        encoder = model.encoders[m].eval()
        for _split, ds in datamodule.splits.items():
            x, mask = ds.tensors[m], ds.tensors.get(f"{m}_mask")
            chunks = [encoder(x[i : i + batch_size], None if mask is None else mask[i : i + batch_size])
                      for i in range(0, len(x), batch_size)]
            ds.tensors[m + SUFFIX] = torch.cat(chunks)
        log.info("Encoder for '%s' is frozen: embeddings computed once per split", m)
    return modalities

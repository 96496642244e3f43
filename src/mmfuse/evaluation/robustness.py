"""Robustness of a trained model to missing and noisy modalities, on the test split.

Missing modalities go through the batch's `present` mask, so what is
measured is each strategy's own missing-modality rule. Noise is a
corruption suited to each modality kind, at severities in [0, 1], drawn from
a generator seeded per (modality, corruption, severity): every strategy
evaluated with the same seed sees exactly the same corrupted test set.
Severity 0 leaves the data untouched.
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import torch

from mmfuse.models.frozen import SUFFIX as EMBEDDING_SUFFIX
from mmfuse.models.metrics import build_metrics, predictions

DEFAULT_SEVERITIES = [round(0.1 * i, 1) for i in range(11)]


def _gaussian(x: torch.Tensor, s: float, g: torch.Generator, scale: float) -> torch.Tensor:
    return x + s * scale * torch.randn(x.shape, generator=g)


def _occlusion(x: torch.Tensor, s: float, g: torch.Generator, scale: float) -> torch.Tensor:
    """A random square covering a fraction s of each image (or a span of s of each signal) set to its mean."""
    if s == 0:
        return x
    out = x.clone()
    size = x.shape[2:]
    side = [max(1, int(round(n * s ** (1 / len(size))))) for n in size]
    starts = [torch.randint(0, n - k + 1, (len(x),), generator=g) for n, k in zip(size, side)]
    grids = torch.meshgrid(*[torch.arange(n) for n in size], indexing="ij")
    box = torch.ones(len(x), *size, dtype=torch.bool)
    for grid, start, k in zip(grids, starts, side):
        pos = grid.unsqueeze(0)
        box &= (pos >= start.view(-1, *[1] * len(size))) & (pos < (start + k).view(-1, *[1] * len(size)))
    return out.masked_fill(box.unsqueeze(1), float(x.mean()))


def _feature_dropout(x: torch.Tensor, s: float, g: torch.Generator, scale: float) -> torch.Tensor:
    return x * (torch.rand(x.shape, generator=g) >= s)


def corruptions(spec) -> dict[str, Callable]:
    """The corruptions that suit a modality kind."""
    if spec.dtype == "int64":
        return {"substitution": None}  # token substitution, handled with the vocabulary below
    if spec.kind == "image":
        return {"gaussian": _gaussian, "occlusion": _occlusion}
    if spec.kind == "audio":
        return {"gaussian": _gaussian}
    return {"gaussian": _gaussian, "dropout": _feature_dropout}


def _substitute_tokens(x, mask, s, g, vocab_size):
    hit = (torch.rand(x.shape, generator=g) < s) & (x != 0)
    if mask is not None:
        hit &= mask.bool()
    return torch.where(hit, torch.randint(1, vocab_size, x.shape, generator=g), x)


@torch.no_grad()
def _accuracy(model, tensors: dict[str, torch.Tensor], present: torch.Tensor, task: str, num_classes: int,
              batch_size: int) -> dict[str, float]:
    metrics = build_metrics(task, num_classes).to(model.device)
    n = len(tensors["label"])
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size].to(model.device) for k, v in tensors.items()}
        batch["present"] = present[i : i + batch_size].to(model.device)
        metrics.update(predictions(task, model(batch)), batch["label"])
    return {k: float(v) for k, v in metrics.compute().items()}


MODES = (True, False, "auto")


def enabled(mode, data_modalities) -> bool:
    """evaluation.robustness: true/false, or auto: on for data sets with two or more modalities."""
    return bool(mode) and (mode is True or len(data_modalities) > 1)


def validate(severities, modalities, data_modalities, mode=True, data_name: str = "data set") -> None:
    if mode not in MODES:
        raise ValueError(f"evaluation.robustness={mode!r}: expected true, false or auto")
    if not mode:
        return
    if mode is True and len(data_modalities) < 2:
        raise ValueError(f"evaluation.robustness=true needs a data set with two or more modalities (it removes them one "
                         f"at a time), but {data_name} has only {list(data_modalities)}; allowed: auto (skipped on "
                         "one-modality data sets) or false")
    bad = [s for s in severities if not 0 <= float(s) <= 1]
    if bad:
        raise ValueError(f"evaluation.severities={list(severities)}: {bad} outside the allowed range [0, 1]")
    unknown = [m for m in (modalities or []) if m not in data_modalities]
    if unknown:
        raise ValueError(f"evaluation.modalities={list(modalities)}: {unknown} not modalities of the data set; allowed: {list(data_modalities)}")


def evaluate_robustness(model, datamodule, severities=DEFAULT_SEVERITIES, modalities=None, seed: int = 0,
                        max_samples: int | None = 2000, batch_size: int = 512) -> dict:
    """{"metric", "clean", "present_subsets": {...}, "noise": {m: {corruption: [..]}}, "auc": {m: {corruption: a}}}."""
    validate(severities, modalities, list(datamodule.modalities))
    model.eval()
    task, k = datamodule.task, max(datamodule.num_classes, 1)
    key = {"multiclass": "acc", "multilabel": "f1", "regression": "mae"}[task]
    test = datamodule.splits["test"].tensors
    n = len(test["label"]) if max_samples is None else min(len(test["label"]), max_samples)
    base = {name: t[:n] for name, t in test.items()}
    names = list(datamodule.modalities)
    full = base["present"].bool()

    def score(tensors, present):
        return _accuracy(model, tensors, present, task, k, batch_size)[key]

    out: dict = {"metric": key, "severities": list(map(float, severities)), "samples": n, "seed": seed}
    out["clean"] = score(base, full)
    used = [m for m in model.modality_names]
    if len(names) > 1:
        subsets = [c for r in range(1, len(names)) for c in itertools.combinations(names, r)] if len(names) <= 4 else \
            [tuple(x for x in names if x != m) for m in names]
        out["present_subsets"] = {}
        for subset in subsets:
            keep = torch.tensor([m in subset for m in names])
            out["present_subsets"]["+".join(subset)] = score(base, full & keep)
    out["noise"], out["auc"] = {}, {}
    for m_index, m in enumerate(names):
        if modalities and m not in modalities or m not in used:
            continue
        spec = datamodule.modalities[m]
        clean = {name: t for name, t in base.items() if name != m + EMBEDDING_SUFFIX}  # corrupt raw inputs
        x = base[m]
        scale = float(x.float().std()) if x.is_floating_point() else 0.0
        out["noise"][m], out["auc"][m] = {}, {}
        for c_index, (corruption, fn) in enumerate(corruptions(spec).items()):
            curve = []
            for s_index, s in enumerate(severities):
                g = torch.Generator().manual_seed(seed * 1_000_003 + m_index * 1009 + c_index * 101 + s_index)
                if float(s) == 0:
                    curve.append(out["clean"])
                    continue
                if fn is None:
                    noisy = _substitute_tokens(x, base.get(f"{m}_mask"), float(s), g, spec.vocab_size)
                else:
                    noisy = fn(x, float(s), g, scale)
                curve.append(score({**clean, m: noisy}, full))
            out["noise"][m][corruption] = curve
            out["auc"][m][corruption] = float(np.trapezoid(curve, x=[float(s) for s in severities])) \
                if len(severities) > 1 else curve[0]
    return out

"""The straightforward robustness evaluation: every score a full forward pass over the test set.

The slow reference that mmfuse.evaluation.robustness (encoders once, fusion and head per subset, one modality
re-encoded per corruption) must equal to 1e-6; it is the code mmfuse ran before that evaluation was cached, and is
kept here, for the tests and benchmarks/bench_robustness.py only.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from mmfuse.evaluation.robustness import DEFAULT_SEVERITIES, _substitute_tokens, corruptions
from mmfuse.models.frozen import SUFFIX as EMBEDDING_SUFFIX
from mmfuse.models.metrics import build_metrics, predictions


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



def reference_robustness(model, datamodule, severities=DEFAULT_SEVERITIES, modalities=None, seed: int = 0,
                        max_samples: int | None = 2000, batch_size: int = 512) -> dict:
    """{"metric", "clean", "present_subsets": {...}, "noise": {m: {corruption: [..]}}, "auc": {m: {corruption: a}}}."""
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


def flat(result: dict, prefix: str = "") -> dict[str, float]:
    """Every number of a robustness result, keyed by its path (for comparing two results value by value)."""
    out = {}
    for k, v in result.items():
        if isinstance(v, dict):
            out |= flat(v, f"{prefix}{k}/")
        elif isinstance(v, list):
            out |= {f"{prefix}{k}/{i}": x for i, x in enumerate(v)}
        elif isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = v
    return out

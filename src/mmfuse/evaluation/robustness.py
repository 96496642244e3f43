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


MODES = (True, False, "auto")


def enabled(mode, data_modalities) -> bool:
    """evaluation.robustness: true/false, or auto: on for data sets with two or more modalities."""
    return bool(mode) and (mode is True or len(data_modalities) > 1)


def validate(severities, modalities, data_modalities, mode=True, data_name: str = "data set",
             max_samples=None, test_size: int | None = None) -> None:
    """The evaluation.* settings, each error naming its key; `test_size` (when known) bounds max_samples."""
    if mode not in MODES:
        raise ValueError(f"evaluation.robustness={mode!r}: expected true, false or auto")
    if not mode:
        return
    if mode is True and len(data_modalities) < 2:
        raise ValueError(
            f"evaluation.robustness=true needs a data set with two or more modalities (it removes them one "
            f"at a time), but {data_name} has only {list(data_modalities)}; allowed: auto (skipped on "
            "one-modality data sets) or false"
        )
    bad = [s for s in severities if not 0 <= float(s) <= 1]
    if bad:
        raise ValueError(f"evaluation.severities={list(severities)}: {bad} outside the allowed range [0, 1]")
    if list(severities) != sorted(severities):
        # the area under the curve is a trapezoid sum over the severities in order
        raise ValueError(
            f"evaluation.severities={list(severities)}: expected ascending order, e.g. {sorted(severities)}"
        )
    unknown = [m for m in (modalities or []) if m not in data_modalities]
    if unknown:
        raise ValueError(
            f"evaluation.modalities={list(modalities)}: {unknown} not modalities of the data set; "
            f"allowed: {list(data_modalities)}"
        )
    if max_samples is None:
        return
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(
            f"evaluation.max_samples={max_samples!r}: expected an integer >= 1 or null (the whole test set)"
        )
    if test_size is not None and max_samples > test_size:
        raise ValueError(
            f"evaluation.max_samples={max_samples} is larger than the test set of {data_name} "
            f"({test_size} samples); expected at most {test_size}, or null for all of them"
        )


def evaluate_robustness(
    model,
    datamodule,
    severities=DEFAULT_SEVERITIES,
    modalities=None,
    seed: int = 0,
    max_samples: int | None = None,
    batch_size: int = 512,
) -> dict:
    """{"metric", "clean", "present_subsets": {...}, "noise": {m: {corruption: [..]}}, "auc": {m: {corruption: a}}}.

    The encoders see the clean test set once: a missing-modality subset only changes `present`, which the encoders
    never read, so each subset runs the fusion and the head alone on the cached embeddings; a corrupted modality is
    re-encoded alone, the others' embeddings reused, and the severities of one corruption share passes when a batch
    holds several test sets. Every value equals that of the plain `model(batch)` path over chunks of `batch_size`
    (tests/robustness_reference.py; measured in benchmarks/bench_robustness.py).
    """
    validate(severities, modalities, list(datamodule.modalities))
    model.eval()
    task = datamodule.task
    key = {"multiclass": "acc", "multilabel": "f1", "regression": "mae"}[task]
    test = datamodule.splits["test"].tensors
    n = len(test["label"]) if max_samples is None else min(len(test["label"]), max_samples)
    base = {name: t[:n] for name, t in test.items()}
    names = list(datamodule.modalities)
    full = base["present"].bool()
    evaluator = CachedEvaluator(model, base, build_metrics(task, max(datamodule.num_classes, 1))[key], batch_size)
    clean = {m: evaluator.encode(m, base[m], base.get(m + EMBEDDING_SUFFIX)) for m in model.modality_names}
    # severities of one corruption are encoded together, as many as fill a batch (on a GPU, a large batch_size)
    per_pass = max(1, batch_size // max(n, 1))

    out: dict = {"metric": key, "severities": list(map(float, severities)), "samples": n, "seed": seed}
    out["clean"] = evaluator.score(clean, full)
    if len(names) > 1:
        subsets = (
            [c for r in range(1, len(names)) for c in itertools.combinations(names, r)]
            if len(names) <= 4
            else [tuple(x for x in names if x != m) for m in names]
        )
        out["present_subsets"] = {}
        for subset in subsets:
            keep = torch.tensor([m in subset for m in names])
            out["present_subsets"]["+".join(subset)] = evaluator.score(clean, full & keep)
    out["noise"], out["auc"] = {}, {}
    for m_index, m in enumerate(names):
        if modalities and m not in modalities or m not in model.modality_names:
            continue
        spec = datamodule.modalities[m]
        x = base[m]
        scale = float(x.float().std()) if x.is_floating_point() else 0.0
        out["noise"][m], out["auc"][m] = {}, {}
        for c_index, (corruption, fn) in enumerate(corruptions(spec).items()):

            def corrupt(s_index: int) -> torch.Tensor:
                g = torch.Generator().manual_seed(seed * 1_000_003 + m_index * 1009 + c_index * 101 + s_index)
                s = float(severities[s_index])
                if fn is None:
                    return _substitute_tokens(x, base.get(f"{m}_mask"), s, g, spec.vocab_size)
                return fn(x, s, g, scale)

            curve = [out["clean"] if float(s) == 0 else None for s in severities]
            todo = [i for i, s in enumerate(severities) if float(s) != 0]
            for group in (todo[i : i + per_pass] for i in range(0, len(todo), per_pass)):
                for s_index, encoded in zip(group, evaluator.encode_versions(m, [corrupt(i) for i in group])):
                    curve[s_index] = evaluator.score({**clean, m: encoded}, full)
            out["noise"][m][corruption] = curve
            out["auc"][m][corruption] = (
                float(np.trapezoid(curve, x=[float(s) for s in severities])) if len(severities) > 1 else curve[0]
            )
    return out


class CachedEvaluator:
    """Encodes one modality at a time and scores fusion + head on cached encodings, chunk by chunk."""

    def __init__(self, model, tensors: dict[str, torch.Tensor], metric, batch_size: int):
        self.model, self.tensors, self.device = model, tensors, model.device
        self.metric, self.batch_size = metric.to(self.device), batch_size
        n = len(tensors["label"])
        self.bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]

    @torch.inference_mode()
    def encode(self, m: str, x: torch.Tensor, embedding: torch.Tensor | None = None) -> list:
        """Per chunk: the encoder's output for `x` (the frozen encoder's cached embedding where there is one), and
        its tokens `(tokens, mask)` for a fusion that reads tokens (their length may differ from chunk to chunk)."""
        encoder, wants_tokens = self.model.encoders[m], self.model.fusion.wants_tokens
        mask = self.tensors.get(f"{m}_mask")
        chunks = []
        for i, j in self.bounds:
            xb = x[i:j].to(self.device)
            mb = None if mask is None else mask[i:j].to(self.device)
            if wants_tokens:
                feat, tokens, token_mask = encoder.encode(xb, mb)
                chunks.append((feat, (tokens, token_mask)))
            else:
                chunks.append((encoder(xb, mb) if embedding is None else embedding[i:j].to(self.device), None))
        return chunks

    @torch.inference_mode()
    def encode_versions(self, m: str, versions: list[torch.Tensor]) -> list[list]:
        """`encode` of each version of modality m (one per severity), the versions stacked into shared passes.

        Each sample's encoding does not depend on its batch's other samples (an eval-mode encoder; checked on the
        CPU against per-version passes by the tests), so stacking only changes how many run at once. Token
        sequences may differ in length from pass to pass, so a fusion that reads tokens gets one pass per version.
        """
        if self.model.fusion.wants_tokens or len(versions) == 1:
            return [self.encode(m, x) for x in versions]
        encoder, batch_size = self.model.encoders[m], self.batch_size
        stacked = torch.cat(versions)
        mask = self.tensors.get(f"{m}_mask")
        mask = None if mask is None else mask.repeat(len(versions), *[1] * (mask.dim() - 1))
        feats = torch.cat(
            [
                encoder(
                    stacked[i : i + batch_size].to(self.device),
                    None if mask is None else mask[i : i + batch_size].to(self.device),
                )
                for i in range(0, len(stacked), batch_size)
            ]
        )
        return [[(f[i:j], None) for i, j in self.bounds] for f in feats.split(len(versions[0]))]

    @torch.inference_mode()
    def score(self, encoded: dict[str, list], present: torch.Tensor) -> float:
        """The task's metric of fusion + head over the encodings, with `present` (N, data modalities)."""
        model, metric = self.model, self.metric
        metric.reset()
        for c, (i, j) in enumerate(self.bounds):
            label = self.tensors["label"][i:j].to(self.device)
            feats = {m: chunks[c][0] for m, chunks in encoded.items()}
            tokens = {m: chunks[c][1] for m, chunks in encoded.items()} if model.fusion.wants_tokens else None
            mask = model.present_mask({"present": present[i:j].to(self.device), "label": label})
            metric.update(predictions(model.task, model.head(model.fusion(feats, mask, tokens=tokens))), label)
        return float(metric.compute())

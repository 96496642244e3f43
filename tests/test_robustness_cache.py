"""Cached robustness evaluation (encoders once, fusion + head per subset) equals the straightforward full forwards."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF
from mmfuse.evaluation.robustness import evaluate_robustness
from mmfuse.models.build import build_model
from mmfuse.models.frozen import precompute_frozen_embeddings
from mmfuse.models.metrics import loss_fn
from robustness_reference import flat, reference_robustness

STRATEGIES = sorted(p.stem for p in (CONF / "fusion").glob("*.yaml") if p.stem != "unimodal")
SEVERITIES = [0.0, 0.3, 1.0]


@pytest.fixture(autouse=True)
def one_thread():
    """Both paths run in this process, so their agreement does not depend on the thread count; one thread keeps two
    test workers on two cores from oversubscribing them (measured: 10x slower with 2 threads per worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def briefly_trained(model, dm, steps: int = 25):
    """A few AdamW steps, so that predictions depend on the inputs (a fresh model often predicts one class)."""
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train = dm.splits["train"].tensors
    model.train()
    for _step in range(steps):
        index = torch.randint(0, len(train["label"]), (64,))
        batch = {k: v[index] for k, v in train.items()}
        optimizer.zero_grad()
        loss_fn(model.task, model(batch), batch["label"]).backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("fusion, batch_size", [(f, 64) for f in STRATEGIES] + [("concat", 400), ("late", 400)])
def test_cached_robustness_equals_the_reference_path(cfg_factory, fusion, batch_size):
    # four modalities (text tokens of uneven length per chunk), 150 test samples in three chunks of 64 (or, at 400,
    # two severities stacked in one pass), a briefly trained model whose predictions move with the inputs, so a wrong
    # subset or a reused corrupted embedding changes the values
    cfg = cfg_factory(f"fusion={fusion}", "logger=none", "data.n_samples=1000")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    torch.manual_seed(0)
    model = briefly_trained(build_model(cfg, dm), dm)
    cached = flat(evaluate_robustness(model, dm, SEVERITIES, seed=1, max_samples=None, batch_size=batch_size))
    reference = flat(reference_robustness(model, dm, SEVERITIES, seed=1, max_samples=None, batch_size=batch_size))
    assert cached.keys() == reference.keys()
    for key, value in reference.items():
        assert cached[key] == pytest.approx(value, abs=1e-6), key
    curves = [v for k, v in reference.items() if k.startswith("noise/") and not k.endswith("/0")]
    assert len(set(curves)) > 1, "the corruptions must move the metric for the comparison to mean anything"


def test_a_frozen_encoders_cached_embedding_is_used_clean_and_recomputed_under_noise(cfg_factory):
    cfg = cfg_factory("fusion=concat", "logger=none", "data.modalities=[image,tabular]", "data.n_samples=1000")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    torch.manual_seed(0)
    model = briefly_trained(build_model(cfg, dm), dm)
    model.encoders["image"].frozen = True
    assert precompute_frozen_embeddings(model, dm) == ["image"]
    # the cache is the truth for clean scores: spoil it, and both paths must see the spoilt clean embeddings alike
    dm.splits["test"].tensors["image__embedding"] += 0.5 * torch.randn_like(
        dm.splits["test"].tensors["image__embedding"]
    )
    cached = flat(evaluate_robustness(model, dm, SEVERITIES, seed=2, batch_size=100))
    reference = flat(reference_robustness(model, dm, SEVERITIES, seed=2, batch_size=100))
    assert cached == pytest.approx(reference, abs=1e-6)

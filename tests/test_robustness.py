"""Robustness evaluation: missing modalities through `present`, seeded corruptions, severity 0 = clean."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from mmfuse.evaluation.robustness import evaluate_robustness
from mmfuse.train import train

COMMON = ["logger=none", "data.modalities=[image,tabular]", "data.interaction=redundant", "trainer.max_epochs=2",
          "data.n_samples=600", "evaluation.severities=[0.0,0.5,1.0]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Unimodal image, unimodal tabular and concat models trained once for the module."""
    from conftest import compose_config

    out = {}
    for name in ("unimodal_image", "unimodal_tabular", "concat"):
        cfg = compose_config([*COMMON, f"fusion={name}"], tmp_path_factory.mktemp(name) / "run")
        out[name] = train(cfg)
    return out


def test_severity_zero_equals_the_clean_test_metric(runs):
    for rec in runs.values():
        rob = rec["robustness"]
        assert rob["clean"] == pytest.approx(rec["metrics"]["test/acc"], abs=1e-6)
        for per_modality in rob["noise"].values():
            for curve in per_modality.values():
                assert curve[0] == rob["clean"]


def test_removing_a_modality_spares_the_other_unimodal_model_and_sends_its_own_to_chance(runs):
    image_model = runs["unimodal_image"]["robustness"]
    assert image_model["present_subsets"]["image"] == image_model["clean"]  # tabular removed: unchanged
    assert abs(image_model["present_subsets"]["tabular"] - 0.25) < 0.08    # image removed: chance (4 classes)
    tab_model = runs["unimodal_tabular"]["robustness"]
    assert tab_model["present_subsets"]["tabular"] == tab_model["clean"]


def test_noise_hurts_and_auc_is_recorded(runs):
    rob = runs["concat"]["robustness"]
    assert set(rob["noise"]) == {"image", "tabular"} and set(rob["noise"]["image"]) == {"gaussian", "occlusion"}
    assert set(rob["noise"]["tabular"]) == {"gaussian", "dropout"}
    for m, per_corruption in rob["noise"].items():  # the area under each curve: trapezoids over severities 0, .5, 1
        for corruption, (c0, c1, c2) in per_corruption.items():
            assert rob["auc"][m][corruption] == pytest.approx(0.5 * (c0 + c1) / 2 + 0.5 * (c1 + c2) / 2, abs=1e-12)
    alone = runs["unimodal_tabular"]["robustness"]  # no other modality to fall back on
    assert (
        alone["noise"]["tabular"]["dropout"][-1] < alone["clean"]
        and alone["noise"]["tabular"]["gaussian"][-1] < alone["clean"]
    )


def test_same_seed_gives_the_same_corrupted_data_across_strategies(cfg_factory, runs):
    """Corruptions depend on the data and the seed only: evaluating twice gives identical curves."""
    cfg = cfg_factory(*COMMON, "fusion=concat")
    dm = instantiate(cfg.data)
    dm.setup()
    from mmfuse.models.build import build_model

    model = build_model(cfg, dm)
    a = evaluate_robustness(model, dm, [0.0, 0.5, 1.0], seed=3)
    b = evaluate_robustness(model, dm, [0.0, 0.5, 1.0], seed=3)
    assert a["noise"] == b["noise"]


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["evaluation.severities=[0.0,1.5]"], r"\[1.5\] outside the allowed range \[0, 1\]"),
        (
            ["data.modalities=[image]", "fusion=unimodal_image", "evaluation.robustness=true"],
            r"evaluation.robustness=true needs a data set with two or more modalities.*'synthetic' has only "
            r"\['image'\]; "
            r"allowed: auto .* or false",
        ),
        (["evaluation.robustness=sometimes"], r"evaluation.robustness='sometimes': expected true, false or auto"),
        (
            ["evaluation.modalities=[video]"],
            r"\['video'\] not modalities of the data set; allowed: \['image', 'tabular'\]",
        ),
        (["evaluation.severities=[0.0,0.5,0.2]"], r"evaluation.severities=\[0.0, 0.5, 0.2\]: expected ascending order"),
        (["evaluation.max_samples=0"], r"evaluation.max_samples=0: expected an integer >= 1 or null"),
        (["evaluation.max_samples=-5"], r"evaluation.max_samples=-5: expected an integer >= 1 or null"),
        (
            ["evaluation.max_samples=91"],
            r"evaluation.max_samples=91 is larger than the test set of data set 'synthetic' "
            r"\(90 samples\); expected at most 90",
        ),
    ],
)
def test_bad_robustness_settings_fail_before_training(cfg_factory, overrides, match):
    cfg = cfg_factory(*COMMON, *overrides)
    with pytest.raises(ValueError, match=match):
        train(cfg)


def test_auto_skips_robustness_on_a_one_modality_data_set(cfg_factory):
    from mmfuse.models.build import build_model
    from test_complexity import formula_flops

    cfg = cfg_factory(
        "logger=none",
        "data.modalities=[image]",
        "data.interaction=redundant",
        "fusion=unimodal_image",
        "data.n_samples=200",
        "trainer.max_epochs=1",
    )
    record = train(cfg)
    assert record["status"] == "completed" and "robustness" not in record
    dm = instantiate(cfg.data)
    dm.setup("fit")  # the rest of the record (cost) is still measured
    batch = next(iter(dm.test_dataloader()))
    assert record["complexity"]["flops_per_sample"] == formula_flops(build_model(cfg, dm), batch)


def test_max_samples_caps_the_test_samples_and_an_older_config_keeps_its_silent_cap(cfg_factory):
    """600 samples: 90 in the test split. A config without evaluation.batch_size (written before the max_samples
    check) kept max_samples=2000 as a cap; it still runs, on all 90."""
    from omegaconf import open_dict

    capped = train(cfg_factory(*COMMON, "fusion=concat", "evaluation.max_samples=50", "evaluation.batch_size=16"))
    assert capped["robustness"]["samples"] == 50 and capped["timing"]["robustness_seconds"] >= 0
    old = cfg_factory(*COMMON, "fusion=concat", "evaluation.max_samples=2000")
    with open_dict(old):
        del old.evaluation["batch_size"]
    assert train(old)["robustness"]["samples"] == 90

"""Every `_target_` of the composed default config is imported before a run builds anything; one that does not
import is answered with its key, its value and what was expected (mmfuse.training_checks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from conftest import compose_config
from mmfuse.plugins import targets
from mmfuse.train import train
from mmfuse.training_checks import EXPECTED


def default_targets() -> list[tuple[str, str]]:
    cfg = compose_config([], Path("/nonexistent/run"), tiny=False)
    GlobalHydra.instance().clear()
    return [(f"{key}._target_", target) for key, target in targets(cfg).items()]


TARGETS = default_targets()


def test_the_default_config_has_the_targets_a_run_instantiates():
    keys = {key for key, _ in TARGETS}
    assert {"data._target_", "fusion._target_", "model.optimizer._target_", "trainer._target_",
            "logger.wandb._target_", "logger.csv._target_", "callbacks.model_checkpoint._target_"} <= keys
    assert all(key.endswith("._target_") and not key.startswith("hydra.") for key in keys)


@pytest.mark.parametrize("key, target", TARGETS, ids=[k for k, _ in TARGETS])
def test_an_unimportable_target_is_named_before_anything_is_built(key, target, cfg_factory, monkeypatch):
    """A near miss of the shipped target (a letter added): the error names the key, the value, the owner that lacks
    it, the shipped name among the suggestions, and what was expected; the run fails before its data are built."""
    module, _, name = target.rpartition(".")
    typo = f"{module}.{name}x"
    cfg = cfg_factory("logger=none")
    with open_dict(cfg):
        OmegaConf.update(cfg, key, typo)
    built = []
    monkeypatch.setattr(
        "mmfuse.train.task.instantiate", lambda *a, **k: built.append(a) or pytest.fail("built something")
    )
    with pytest.raises(ValueError) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith(f"{key}={typo!r}: cannot be imported ({module} has no {name + 'x'!r} (did you mean ")
    assert name in message.split("did you mean ")[1].split("?")[0].split(", ")
    assert message.endswith(f"?)); expected {EXPECTED}")
    assert not built
    record = json.loads((Path(cfg.paths.run_dir) / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["message"] == str(error.value)

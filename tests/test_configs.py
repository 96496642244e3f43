"""Every option of every config group composes and instantiates."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, SHARED_DATA, run_cli
from mmfuse.models.build import build_model
from mmfuse.train.components import instantiate_callbacks, instantiate_loggers

GROUPS = sorted(
    str(d.relative_to(CONF)) for d in CONF.rglob("*") if d.is_dir() and any(d.glob("*.yaml")) and d.name != "hydra"
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]
# data sets other than the synthetic one read files: point them at small real or generated ones
DATA_OVERRIDES = {
    "avmnist_real": [
        f"paths.data_dir={SHARED_DATA}",
        "data.sizes=[200,100,100]",
        "trainer.max_epochs=1",
        "callbacks=minimal",
    ],
}


def data_overrides(option: str, tmp_path) -> list[str] | None:
    """Overrides that make a data option loadable here; None for the synthetic data (tiny defaults apply)."""
    if option in DATA_OVERRIDES:
        return DATA_OVERRIDES[option]
    if option == "synthetic":
        return None
    from test_data_formats import tiny_data_overrides

    return [f"data={option}", *tiny_data_overrides(tmp_path)[option], "trainer.max_epochs=1", "callbacks=minimal"]


def overrides_for(group: str, option: str, tmp_path) -> tuple[list[str], bool]:
    """The overrides that compose `group=option` against data it can run on, and whether tiny defaults apply."""
    if group == "data":
        extra = data_overrides(option, tmp_path)
        return [f"data={option}", *(extra or [])], extra is None
    if group == "encoder/sequence":  # sequences come from the affect layout
        return [*data_overrides("affect", tmp_path), f"{group}={option}"], False
    if group == "encoder/text" and option == "hf":
        from test_pretrained import tiny_hf_model

        model = tiny_hf_model(tmp_path / "bert")
        return [
            *data_overrides("manifest", tmp_path),
            f"data.tokenizer={model}",
            "encoder/text=hf",
            f"encoder.text.model_dir={model}",
        ], False
    if group == "experiment" and option != "fusion_comparison":
        return [f"{group}={option}", "data=avmnist_real", *DATA_OVERRIDES["avmnist_real"]], False
    return [f"{group}={option}"], True


def test_groups_the_foundation_promises_exist():
    for group in (
        "data",
        "encoder/image",
        "encoder/text",
        "encoder/audio",
        "encoder/tabular",
        "fusion",
        "model",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "experiment",
        "debug",
    ):
        assert group in GROUPS, group
    assert {"default", "cpu", "gpu"} <= set(options("trainer"))
    assert {"wandb", "csv", "tensorboard", "many", "none"} <= set(options("logger"))
    assert {"fast_dev_run", "overfit", "limit"} <= set(options("debug"))


def test_every_config_file_is_commented():
    for path in CONF.rglob("*.yaml"):
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path} starts without a comment"


def test_every_fusion_config_names_itself(cfg_factory):
    for name in options("fusion"):
        assert cfg_factory(f"fusion={name}").fusion.name == name


@pytest.mark.parametrize("group, option", ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_option_composes_and_instantiates(cfg_factory, group, option, tmp_path):
    overrides, tiny = overrides_for(group, option, tmp_path)
    cfg = cfg_factory(*overrides, tiny=tiny)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    assert datamodule.modalities and (datamodule.num_classes >= 2 or datamodule.task == "regression")

    if group.startswith("encoder/"):
        kind = group.split("/")[1]
        modality = next(m for m, s in datamodule.modalities.items() if s.kind == kind)
        spec = datamodule.modalities[modality]
        encoder = instantiate(cfg.encoder[kind], spec=spec)
        batch = next(iter(datamodule.train_dataloader()))
        out = encoder(batch[modality], batch.get(f"{modality}_mask"))
        assert out.shape == (len(batch["label"]), encoder.out_dim)
    elif group in ("fusion", "model", "data"):
        model = build_model(cfg, datamodule)
        batch = next(iter(datamodule.train_dataloader()))
        assert model(batch).shape[0] == len(batch["label"])
    elif group == "logger":
        loggers = instantiate_loggers(cfg, {"choices": {}, "sweep_dir": None}, datamodule)
        assert len(loggers) == len([k for k, v in (cfg.logger or {}).items() if v])
    elif group == "callbacks":
        callbacks = instantiate_callbacks(cfg, datamodule.task, has_logger=True)
        expected = [k for k, v in (cfg.callbacks or {}).items() if v]
        assert len(callbacks) == len(expected)
    elif group in ("trainer", "debug"):
        trainer_cfg = cfg.trainer
        if trainer_cfg.accelerator == "gpu" and not torch.cuda.is_available():
            # the GPU config itself is checked for bf16; its precision path is exercised on the CPU
            assert trainer_cfg.precision == "bf16-mixed"
            trainer_cfg = OmegaConf.merge(
                trainer_cfg,
                {"accelerator": "cpu"},
                {"devices": 2, "sync_batchnorm": False} if trainer_cfg.get("strategy") else {},
            )
        trainer = instantiate(trainer_cfg, logger=False, enable_progress_bar=False)
        assert trainer.max_epochs >= 1
    elif group == "experiment":
        sweep = cfg.get("experiment_name")
        assert sweep
    else:  # paths
        assert Path(cfg.paths.output_dir).is_absolute()


def test_experiment_sweeps_name_existing_choices():
    for name in options("experiment"):
        exp = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
        params = OmegaConf.select(exp, "hydra.sweeper.params") or {}
        for group, values in params.items():
            if (CONF / group).is_dir():
                for value in str(values).split(","):
                    assert value.strip() in options(group), f"experiment {name}: {group}={value} is not a config"


def test_help_lists_groups_and_choices():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for text in (
        "== Config groups ==",
        "fusion: ",
        "concat",
        "late",
        "encoder/text: ",
        "bag",
        "mmfuse train fusion=late seed=0",
    ):
        assert text in result.stdout, text


def test_cfg_job_prints_the_composed_config():
    result = run_cli("train", "fusion=late", "--cfg", "job")
    assert result.returncode == 0
    cfg = OmegaConf.create(result.stdout)
    assert cfg.fusion.name == "late" and cfg.seed == 0


def test_unknown_choice_gets_hydras_list_of_valid_choices():
    result = run_cli("train", "fusion=nope")
    assert result.returncode != 0
    assert "Could not find 'fusion/nope'" in result.stderr
    assert "Available options in 'fusion'" in result.stderr and "concat" in result.stderr

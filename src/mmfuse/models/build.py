"""From config + DataModule to a LightningModule, with every mismatch caught before training."""
from __future__ import annotations

import copy
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from mmfuse.fusion.base import trait
from mmfuse.fusion.conformance import CheckFailed, check_gradients, check_output
from mmfuse.fusion.unimodal import SingleModality
from mmfuse.models.class_weights import resolve_class_weights
from mmfuse.models.fusion_module import FusionModule, UnimodalModule
from mmfuse.plugins import is_plugin


def _plain(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def is_unimodal(fusion_cfg) -> bool:
    """A unimodal baseline is any fusion choice whose _target_ is SingleModality."""

    try:
        return issubclass(get_class(fusion_cfg.get("_target_")), SingleModality)
    except Exception:  # noqa: BLE001 - a target that does not import
        return False


def model_modalities(cfg: DictConfig, datamodule) -> list[str]:
    """The data set's modalities the model uses, checked against the data set and the fusion."""
    available = list(datamodule.modalities)
    fusion = cfg.fusion
    if is_unimodal(fusion):
        if fusion.get("modality") not in available:
            raise ValueError(
                f"fusion={fusion.get('name')}: fusion.modality={fusion.get('modality')!r} is not a modality of data "
                f"set "
                f"'{datamodule.name}' (it has {available})"
            )
        return [fusion.modality]
    wanted = list(cfg.model.get("modalities") or available)
    missing = [m for m in wanted if m not in available]
    if missing:
        raise ValueError(
            f"model.modalities asks for {missing}, which data set '{datamodule.name}' lacks (it has {available})"
        )
    try:
        fusion_cls = get_class(fusion._target_)
    except Exception as e:  # noqa: BLE001 - a target that does not import
        raise ValueError(
            f"fusion={fusion.get('name')}: cannot import its _target_ {fusion.get('_target_')!r} ({e})"
        ) from None
    least, most = trait(fusion_cls, "min_modalities"), trait(fusion_cls, "max_modalities")
    if len(wanted) < least:
        raise ValueError(
            f"fusion={fusion.get('name')} needs at least {least} modalities, "
            f"but the model gets {wanted} from data set '{datamodule.name}'"
        )
    if most is not None and len(wanted) > most:
        raise ValueError(
            f"fusion={fusion.get('name')} takes at most {most} modalities, but the model gets {wanted} "
            f"from data set '{datamodule.name}'; choose them with model.modalities=[...]"
        )
    if not trait(fusion_cls, "uses_raw_inputs"):
        kinds = {m: datamodule.modalities[m].kind for m in wanted}
        no_encoder = {m: k for m, k in kinds.items() if k not in (cfg.get("encoder") or {})}
        if no_encoder:
            raise ValueError(
                f"no encoder configured for modality kind(s) {no_encoder} of data set '{datamodule.name}'; "
                f"choose one with encoder/<kind>=<choice>"
            )
    return wanted


def check_encoder_overrides(overrides: list[str], datamodule) -> None:
    """An encoder chosen on the command line for a modality the data set lacks is a mistake worth naming.

    Encoders are keyed by modality kind (image, text, audio, tabular, sequence, ...).
    """
    kinds = {spec.kind for spec in datamodule.modalities.values()}
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key.startswith("encoder/") or key.startswith("encoder."):
            kind = key.replace("/", ".").split(".")[1]
            if kind not in kinds:
                raise ValueError(
                    f"override {o!r} sets an encoder for modality '{kind}', which data set '{datamodule.name}' "
                    f"lacks (it has {list(datamodule.modalities)})"
                )


def training_labels(datamodule):
    """The training split's label tensor (class indices, multi-hot rows or values)."""
    datamodule.setup("fit")
    return datamodule.splits["train"].tensors["label"]


def loss_options(cfg: DictConfig, datamodule) -> dict | None:
    """`model.loss` with `class_weights` resolved to numbers, which the hyperparameters (and checkpoints) keep."""
    loss = _plain(cfg.model.get("loss"))
    if not loss or loss.get("class_weights") is None:
        return loss
    weights = resolve_class_weights(
        loss["class_weights"],
        datamodule.task,
        datamodule.num_classes,
        lambda: training_labels(datamodule),
        getattr(datamodule, "class_names", None),
    )
    return {**loss, "class_weights": weights}


def check_plugin_fusion(model: FusionModule, fusion_cfg: dict) -> None:
    """A user's fusion strategy, as built for this run, passes the contract's quick checks before any training:
    forward's signature, the output's shape, a gradient for every parameter (`mmfuse check` runs them all).

    Run on a copy, with torch's random state put back: the run's own numbers do not change.
    """
    in_dims = (
        dict(model.fusion.in_dims)
        if isinstance(getattr(model.fusion, "in_dims", None), dict)
        else {m: e.out_dim for m, e in model.encoders.items()}
    )
    name = fusion_cfg.get("name")
    with torch.random.fork_rng(devices=[]):
        try:
            for check in (check_output, check_gradients):
                check(copy.deepcopy(model.fusion), in_dims)
        except CheckFailed as e:
            raise ValueError(
                f"fusion={name} ({fusion_cfg.get('_target_')}): {e} (`mmfuse check fusion={name}`, "
                "with your --config-dir, runs every conformance check)"
            ) from None
        except Exception as e:  # noqa: BLE001 - the strategy itself raised on generated inputs
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(
                f"fusion={name} ({fusion_cfg.get('_target_')}) fails on generated inputs "
                f"{in_dims}: {type(e).__name__}: {first}"
            ) from None


def build_model(cfg: DictConfig, datamodule) -> FusionModule:
    used = model_modalities(cfg, datamodule)
    specs = {m: datamodule.modalities[m].to_dict() for m in used}
    fusion = _plain(cfg.fusion)
    module_cls = UnimodalModule if is_unimodal(fusion) else FusionModule
    model = module_cls(
        modalities=specs,
        data_modalities=list(datamodule.modalities),
        num_classes=datamodule.num_classes,
        task=datamodule.task,
        encoders={
            m: _plain(cfg.encoder[specs[m]["kind"]]) for m in used if specs[m]["kind"] in (cfg.get("encoder") or {})
        },
        fusion=fusion,
        head=_plain(cfg.model.get("head")),
        optimizer=_plain(cfg.model.get("optimizer")),
        scheduler=_plain(cfg.model.get("scheduler")),
        loss=loss_options(cfg, datamodule),
        modality_dropout=float(cfg.model.get("modality_dropout") or 0.0),
        class_names=getattr(datamodule, "class_names", None),
    )
    if is_plugin(fusion["_target_"]):
        check_plugin_fusion(model, fusion)
    return model

"""LightningModules: encoders ModuleDict -> fusion -> head, and the unimodal baseline."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.stems import InputStem
from mmfuse.fusion.base import trait, with_traits
from mmfuse.models.class_weights import check_class_weights
from mmfuse.models.frozen import SUFFIX as EMBEDDING_SUFFIX
from mmfuse.models.heads import MLPHead
from mmfuse.models.metrics import MONITOR, build_metrics, loss_fn, predictions
from mmfuse.models.schedules import warmup_cosine

FUSION_META_KEYS = ("name", "_target_")


def drop_modalities(present: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each observed modality with probability p, never all of a sample's modalities."""
    drop = torch.rand(present.shape, device=present.device, generator=generator) < p
    kept = present & ~drop
    empty = ~kept.any(1) & present.any(1)
    if empty.any():
        # keep one observed modality, chosen at random, for samples that lost all
        choice = (torch.rand(present.shape, device=present.device, generator=generator) * present).argmax(1)
        kept[empty, choice[empty]] = True
    return kept


class FusionModule(pl.LightningModule):
    """A fused multimodal classifier/regressor.

    Arguments are plain data (dicts from the Hydra config and the
    DataModule's modality specs) so that checkpoints rebuild the model with
    `FusionModule.load_from_checkpoint` alone.
    """

    def __init__(
        self,
        modalities: dict[str, dict],
        data_modalities: list[str],
        num_classes: int,
        task: str,
        encoders: dict[str, dict],
        fusion: dict,
        head: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        loss: dict | None = None,
        modality_dropout: float = 0.0,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        # logger=False: the run config is logged once, by train.py, with the choices at the top level
        self.save_hyperparameters(logger=False)
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"model.modality_dropout must be in [0, 1), got {modality_dropout}")
        self.task = task
        loss = dict(loss or {})
        weights = check_class_weights(loss.pop("class_weights", None), task, num_classes)
        self.loss_options = loss
        # a buffer follows the module to its device; not persistent: the hyperparameters rebuild it from a checkpoint
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights), persistent=False)
        self.specs = {m: ModalitySpec(**{**d, "shape": tuple(d["shape"])}) for m, d in modalities.items()}
        self.modality_names = list(self.specs)
        self.register_buffer(
            "present_index", torch.tensor([data_modalities.index(m) for m in self.modality_names]), persistent=False
        )
        out_dim = 1 if task == "regression" else num_classes

        fusion_cls = get_class(fusion["_target_"])
        if trait(fusion_cls, "uses_raw_inputs"):
            self.encoders = nn.ModuleDict({m: InputStem(s) for m, s in self.specs.items()})
        else:
            self.encoders = nn.ModuleDict({m: instantiate(encoders[m], spec=s) for m, s in self.specs.items()})
        for m, encoder in self.encoders.items():
            if not isinstance(getattr(encoder, "out_dim", None), int):
                raise ValueError(
                    f"encoder.{self.specs[m].kind} ({type(encoder).__name__}) for modality {m!r} has no "
                    "integer out_dim; set self.out_dim (the width its forward returns)"
                )
        kwargs = {k: v for k, v in fusion.items() if k not in FUSION_META_KEYS}
        if trait(fusion_cls, "produces_logits"):
            kwargs["num_classes"] = out_dim
        # a plain nn.Module strategy (no mmfuse.fusion.Fusion base) gets the default traits
        self.fusion = with_traits(fusion_cls(in_dims={m: e.out_dim for m, e in self.encoders.items()}, **kwargs))
        if not isinstance(getattr(self.fusion, "out_dim", None), int):
            raise ValueError(
                f"fusion={fusion.get('name')} ({fusion['_target_']}) has no integer out_dim; set "
                "self.out_dim in its constructor (the head is sized from it)"
            )
        if self.fusion.wants_tokens:
            lacking = [m for m, e in self.encoders.items() if not callable(getattr(e, "encode", None))]
            if lacking:
                raise ValueError(
                    f"fusion={fusion.get('name')} wants token sequences, but the encoders of {lacking} "
                    "have no encode(x, mask) -> (pooled, tokens, token_mask); subclass "
                    "mmfuse.encoders.base.Encoder and implement tokens()"
                )
        self.head = (
            nn.Identity() if self.fusion.produces_logits else MLPHead(self.fusion.out_dim, out_dim, **(head or {}))
        )

        self.monitor_name, mode = MONITOR[task]
        self.train_metrics = build_metrics(task, num_classes, full=False).clone(prefix="train/")
        self.val_metrics = build_metrics(task, num_classes).clone(prefix="val/")
        self.test_metrics = build_metrics(task, num_classes).clone(prefix="test/")
        self.val_best = MaxMetric() if mode == "max" else MinMetric()
        self.best_so_far: float | None = None  # val_best's value, kept in checkpoints
        # sample-weighted mean losses, reduced exactly across DDP processes (which may hold unequal shares)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()

    # --- model ---------------------------------------------------------------------
    def present_mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        present = batch.get("present")
        if present is None:
            return torch.ones(len(batch["label"]), len(self.modality_names), dtype=torch.bool, device=self.device)
        return present.bool().index_select(1, self.present_index)

    def forward(self, batch: dict[str, torch.Tensor], present: torch.Tensor | None = None) -> torch.Tensor:
        present = self.present_mask(batch) if present is None else present
        feats, tokens = {}, None
        if self.fusion.wants_tokens:
            tokens = {}
            for m, enc in self.encoders.items():
                feats[m], tok, tok_mask = enc.encode(batch[m], batch.get(f"{m}_mask"))
                tokens[m] = (tok, tok_mask)
        else:
            for m, enc in self.encoders.items():
                cached = batch.get(m + EMBEDDING_SUFFIX)  # a frozen encoder's precomputed output
                feats[m] = cached if cached is not None else enc(batch[m], batch.get(f"{m}_mask"))
        return self.head(self.fusion(feats, present, tokens=tokens))

    # --- steps ---------------------------------------------------------------------
    def _shared_step(self, batch, present=None):
        scores = self(batch, present)
        loss = loss_fn(self.task, scores, batch["label"], **self.loss_options, class_weights=self.class_weights)
        return loss, predictions(self.task, scores.detach())

    def training_step(self, batch, batch_idx):
        present = self.present_mask(batch)
        if self.hparams.modality_dropout > 0:
            present = drop_modalities(present, self.hparams.modality_dropout)
        loss, preds = self._shared_step(batch, present)
        self.train_metrics.update(preds, batch["label"])
        self.train_loss.update(loss.detach(), len(batch["label"]))
        if batch_idx == 0 or self._writes_step_logs():
            # a self.log call costs about 1 ms (Lightning's bookkeeping); the step loss is logged when the loggers
            # will write it, and at an epoch's first batch for the progress bar
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _writes_step_logs(self) -> bool:
        """Whether Lightning hands this step's values to the loggers (every `trainer.log_every_n_steps` optimizer
        steps)."""
        every = self.trainer.log_every_n_steps
        return every > 0 and ((self.global_step + 1) % every == 0 or self.trainer.should_stop)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # callbacks' on_train_epoch_end runs before the module's: log the epoch's training metrics at its last batch,
        # so that a callback reading metrics at the end of the epoch (the record's history) sees this epoch's values
        if self.trainer.is_last_batch:
            self._log_train_epoch()

    def on_train_epoch_end(self):
        if self.train_loss.update_count:  # an epoch cut short (should_stop mid-epoch) logs what it has
            self._log_train_epoch()

    def _log_train_epoch(self):
        values = self.train_metrics.compute()
        loss = self.train_loss.compute()
        self.train_metrics.reset()
        self.train_loss.reset()
        # already epoch values (torchmetrics reduces them across DDP processes): batch_size=1 keeps them as they are
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=1)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, logger=False, batch_size=1
        )  # the record's name for it

    def on_train_start(self):
        # the sanity check must not seed the best-so-far tracker; a resumed run continues the one it checkpointed
        self.val_metrics.reset()
        self.val_best.reset()
        self.best_so_far, restored = None, self.best_so_far
        if restored is not None:
            self.val_best.update(restored)
            self.best_so_far = restored

    # the best-so-far metric is not in the state_dict (metric states are not persistent): checkpoints carry it
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.best_so_far is not None:
            checkpoint["mmfuse_val_best"] = self.best_so_far

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before this hook existed kept the tracker's state under ResumeState's key
        legacy = (checkpoint.get("mmfuse_resume_state") or {}).get("val_best") or {}
        self.best_so_far = checkpoint.get("mmfuse_val_best", next((float(v) for v in legacy.values()), None))

    def validation_step(self, batch, batch_idx):
        loss, preds = self._shared_step(batch)
        self.val_metrics.update(preds, batch["label"])
        self.val_loss.update(loss, len(batch["label"]))
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True, batch_size=len(batch["label"]))

    def on_validation_epoch_end(self):
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log_dict(values, prog_bar=False)
        self.val_best.update(values[f"val/{self.monitor_name}"])
        best = self.val_best.compute()
        if not self.trainer.sanity_checking:
            self.best_so_far = float(best)
        self.log(f"val/{self.monitor_name}_best", best, prog_bar=True)

    def test_step(self, batch, batch_idx):
        loss, preds = self._shared_step(batch)
        self.test_metrics.update(preds, batch["label"])
        self.test_loss.update(loss, len(batch["label"]))
        self.log("test/loss", self.test_loss, on_epoch=True, batch_size=len(batch["label"]))

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch, batch_idx):
        return predictions(self.task, self(batch))

    # --- optimisation -----------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        opt_cfg = dict(self.hparams.optimizer or {"_target_": "torch.optim.AdamW", "lr": 1e-3})
        opt_cfg["_partial_"] = True
        optimizer = instantiate(opt_cfg)(params=self.parameters())
        sched = dict(self.hparams.scheduler or {})
        name = sched.pop("name", "none")
        if name in (None, "none"):
            return optimizer
        if name != "warmup_cosine":
            raise ValueError(f"model.scheduler.name={name!r}; expected warmup_cosine or none")
        scheduler = warmup_cosine(optimizer, self.trainer.estimated_stepping_batches, **sched)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- records -----------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        def count(module: nn.Module, trainable: bool = False) -> int:
            return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)

        counts = {"total": count(self), "trainable": count(self, trainable=True)}
        for m, enc in self.encoders.items():
            counts[f"encoder/{m}"] = count(enc)
        counts["fusion"] = count(self.fusion)
        counts["head"] = count(self.head)
        return counts


class UnimodalModule(FusionModule):
    """The unimodal baseline: one encoder and a head; `fusion.modality` picks the modality.

    Takes the same arguments as FusionModule; only the chosen modality's
    encoder is built, and a missing modality leaves the head's bias alone.
    """

    def __init__(self, modalities: dict[str, dict], fusion: dict, **kwargs):
        modality = fusion.get("modality")
        if modality not in modalities:
            raise ValueError(
                f"fusion={fusion.get('name')}: fusion.modality={modality!r} is not a modality of the data set "
                f"{list(modalities)}"
            )
        super().__init__(modalities={modality: modalities[modality]}, fusion=fusion, **kwargs)

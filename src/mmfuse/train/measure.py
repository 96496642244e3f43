"""What a run measures after its test: cost (complexity) and robustness to missing and noisy modalities."""
from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig

from mmfuse.callbacks.epoch_timer import EpochTimer
from mmfuse.evaluation import robustness
from mmfuse.evaluation.complexity import complexity
from mmfuse.train.run_life import RunLife

log = logging.getLogger(__name__)


def robustness_settings(cfg: DictConfig, datamodule) -> tuple[bool, int | None]:
    """Whether this run evaluates robustness, and on how many test samples; a bad `evaluation` key fails here,
    before training."""
    evaluation = cfg.get("evaluation") or {}
    test_size = len(datamodule.splits["test"]) if "test" in datamodule.splits else None
    max_samples = evaluation.get("max_samples")
    if "batch_size" not in evaluation and max_samples is not None and test_size is not None:
        # a config from before evaluation.batch_size existed capped max_samples silently at the test set's size
        max_samples = min(max_samples, test_size)
    robustness.validate(evaluation.get("severities") or [], evaluation.get("modalities"), list(datamodule.modalities),
                        evaluation.get("robustness", False), f"data set '{datamodule.name}'", max_samples, test_size)
    return robustness.enabled(evaluation.get("robustness", False), datamodule.modalities), max_samples


def measure(cfg: DictConfig, run: RunLife, model, datamodule, timer: EpochTimer, robust: bool,
            max_samples: int | None) -> dict[str, Any]:
    """Records complexity (and robustness, when on and the run was tested); returns the W&B summaries they make."""
    cost = complexity(model, next(iter(datamodule.test_dataloader())), timer.seconds, timer.periods)
    run.folder.update(complexity=cost)
    summary = {f"complexity/{k}": v for k, v in {**cost, **run.record["params"]}.items() if not isinstance(v, list)}
    if robust and cfg.get("test"):
        log.info("Evaluating robustness to missing and noisy modalities")
        evaluation = cfg.evaluation
        t0 = time.time()
        rob = robustness.evaluate_robustness(model, datamodule, evaluation.severities, evaluation.get("modalities"),
                                             evaluation.get("seed", 0), max_samples, evaluation.get("batch_size", 512))
        run.timing["robustness_seconds"] = round(time.time() - t0, 3)
        run.folder.update(robustness=rob)
        summary |= {f"robustness/present/{k}": v for k, v in (rob.get("present_subsets") or {}).items()}
        summary |= {f"robustness/auc/{m}/{c}": a for m, per in rob["auc"].items() for c, a in per.items()}
    return summary

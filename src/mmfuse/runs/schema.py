"""run.json's schema, as code: one TypedDict per section, a version, and the check made on every write.

docs/RUN_RECORD.md explains each field. A record with a newer `schema_version` than this mmfuse reads is refused
with a clear error; an older one (version 1 said `schema: 1`) is read as it is: later versions only add keys.
"""
from __future__ import annotations

import types
import typing
from typing import Any, TypedDict

SCHEMA_VERSION = 2
STATUSES = ("running", "completed", "failed", "interrupted", "diverged")


class Timing(TypedDict, total=False):
    started: str                 # ISO time
    ended: str
    ended_at: float              # time.time() at the end
    wall_seconds: float          # start of train() to its end
    fit_seconds: float
    test_seconds: float
    robustness_seconds: float
    first_step_at: float | None  # time.time() of the first training batch
    startup: dict[str, float]    # phase -> time.time() (tracking/startup.py)


class Best(TypedDict, total=False):
    monitor: str
    score: float | None
    checkpoint: str


class Error(TypedDict, total=False):
    type: str
    message: str
    traceback_file: str
    step: int                    # diverged: the step of the first non-finite value
    last_finite_metrics: dict[str, Any]


class Record(TypedDict, total=False):
    schema_version: int
    schema: int                  # version 1's name for schema_version
    status: str                  # one of STATUSES
    run_dir: str
    run_name: str
    pid: int
    host: str
    config: dict[str, Any]       # the fully resolved config
    choices: dict[str, Any]      # config-group choices Hydra made
    overrides: list[str]
    sweep_dir: str | None
    metrics: dict[str, float]    # flat keys as logged: val/acc_best, test/acc, ...
    history: list[dict[str, Any]]  # per epoch: {epoch, step, val/..., train/...}
    best: Best
    timing: Timing
    params: dict[str, int]       # parameter counts: total, trainable, encoder/<m>, fusion, head
    loss: dict[str, Any]         # model.loss as the model got it (class_weights resolved)
    complexity: dict[str, Any]   # flops_per_sample, latency_ms_per_sample, peak_rss_mb, ...
    robustness: dict[str, Any]   # evaluation/robustness.py's result
    data: dict[str, Any]         # {name, task, num_classes, modalities, sizes}
    data_fingerprint: str
    data_skipped: dict[str, Any]
    git: dict[str, Any]          # {commit, dirty}
    versions: dict[str, Any]     # package versions
    environment: dict[str, Any]  # {threads, cuda, processes, accelerator, device, precision}
    wandb: dict[str, Any]        # {status, mode, id, dir} or {status: disabled, reason}
    error: Error
    resumed: list[dict[str, Any]]  # [{at, previous_status}]
    reproduced_from: dict[str, Any]  # {run_dir, run_name, status}
    evals: list[dict[str, Any]]  # `mmfuse eval`: [{eval_dir, ckpt, overrides, metrics, started}]
    exports: list[dict[str, Any]]  # `mmfuse export`: [{folder, ckpt, format, checks, created}]
    plugins: dict[str, Any]      # per config key of the user's code: {target, module, path, files, sha256}
                                 # or {target, distribution, version}


def _kind(annotation) -> tuple[type, ...]:
    """The runtime types a value of `annotation` may have."""
    if typing.is_typeddict(annotation):
        return (dict,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(annotation) for t in _kind(a))
    if annotation is type(None):
        return (type(None),)
    if annotation is float:
        return (float, int)
    if annotation is Any:
        return (object,)
    return (origin or annotation,)


def problems(record: dict[str, Any]) -> list[str]:
    """What in `record` does not follow the schema: unknown keys and values of the wrong type, by section."""
    found = []
    for section, fields in ((None, record), *((k, record[k]) for k in ("timing", "best", "error")
                                               if isinstance(record.get(k), dict))):
        schema = Record if section is None else typing.get_type_hints(Record)[section]
        hints = typing.get_type_hints(schema)
        for key, value in fields.items():
            where = key if section is None else f"{section}.{key}"
            if key not in hints:
                found.append(f"{where}: not a field of the run record")
            elif not isinstance(value, _kind(hints[key])):
                found.append(f"{where}: {type(value).__name__}, expected {hints[key]}")
    if record.get("status") not in (None, *STATUSES):
        found.append(f"status: {record['status']!r}, expected one of {list(STATUSES)}")
    return found


def version(record: dict[str, Any]) -> int:
    return int(record.get("schema_version", record.get("schema", 1)))

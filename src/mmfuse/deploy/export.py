"""A completed run's model as a self-checked torch.export / ONNX artifact with its preprocessing (`mmfuse export`;
the command's options and exit statuses are in mmfuse/cli/export.py)."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfuse.deploy import FORMATS
from mmfuse.deploy.artifact import (
    ARTIFACT_JSON,
    EXAMPLE,
    EXPORTS,
    FORMAT_VERSION,
    ONNX,
    PROGRAM,
    Artifact,
)
from mmfuse.errors import UserError
from mmfuse.fusion.conformance import CheckFailed, check_exportable
from mmfuse.lifecycle.evaluate import checkpoint_path, load_model
from mmfuse.lifecycle.snapshot import read_run, run_config, stamp
from mmfuse.runs.folder import RunFolder, pid_alive


def check_onnx_available(check: bool = True) -> None:
    """Before any work: the packages --format onnx needs, onnxruntime among them unless the check is waived."""
    missing = [p for p in ("onnx", "onnxscript") if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"--format onnx needs the {' and '.join(missing)} package(s): pip install -e '.[onnx]' "
                             "(or use --format pt2)")
    if check and importlib.util.find_spec("onnxruntime") is None:
        raise UserError("--format onnx checks model.onnx against PyTorch with onnxruntime, which is not installed: "
                        "pip install -e '.[onnx]', or pass --no-check to write model.onnx unchecked")


class Exportable(nn.Module):
    """The module that is exported: a dict of inputs -> probabilities (softmax, sigmoid per label) or values."""

    def __init__(self, model, task: str):
        super().__init__()
        self.model, self.task = model, task
        self.eval()

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = self.model(inputs, inputs["present"])
        if self.task == "multiclass":
            return scores.softmax(-1)
        if self.task == "multilabel":
            return scores.sigmoid()
        return scores


def input_batch(model, datamodule, n: int) -> dict[str, Any]:
    """The first n test samples as the program's inputs: present (B, M) over the model's modalities, tensors, masks."""
    data = datamodule.splits["test"][torch.arange(min(n, len(datamodule.splits["test"])))]
    inputs = {"present": model.present_mask(data)}
    for m in model.modality_names:
        inputs[m] = data[m]
        if model.specs[m].has_mask:
            inputs[f"{m}_mask"] = data[f"{m}_mask"].bool()
    return inputs


def max_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def export_pt2(program, inputs: dict, folder: Path):
    batch = torch.export.Dim("batch", min=1)
    try:
        ep = torch.export.export(program, (inputs,), dynamic_shapes=({k: {0: batch} for k in inputs},))
    except Exception as e:  # noqa: BLE001 - torch.export's reasons are many: name the part that cannot be traced
        raise UserError(f"the model cannot be exported: {untraceable_part(program.model, inputs)}; "
                        f"torch.export says: {type(e).__name__}: {first_line(e)}") from None
    torch.export.save(ep, str(folder / PROGRAM))
    return ep


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def untraceable_part(model, inputs: dict) -> str:
    """Which of the model's parts torch.export cannot trace alone: each encoder, then the fusion, then the head."""
    for m, encoder in model.encoders.items():
        x, mask = inputs[m][:2], inputs.get(f"{m}_mask")
        try:
            torch.export.export(encoder, (x,) if mask is None else (x, mask[:2]))
        except Exception as e:  # noqa: BLE001
            return (f"encoder.{model.specs[m].kind} ({type(encoder).__module__}.{type(encoder).__qualname__}) of "
                    f"modality {m!r} ({first_line(e)})")
    fusion = model.fusion
    try:
        check_exportable(fusion, {m: e.out_dim for m, e in model.encoders.items()})
    except CheckFailed as e:
        return f"the fusion {type(fusion).__module__}.{type(fusion).__qualname__} ({e})"
    return "not one part alone (the encoders and the fusion each trace); the whole model's forward"


def export_onnx(ep, inputs: dict, reference, folder: Path, check: bool = True) -> dict[str, Any]:
    onnx_program = torch.onnx.export(ep, (inputs,), dynamo=True, verbose=False)
    onnx_program.save(str(folder / ONNX))
    info: dict[str, Any] = {"file": ONNX}
    if not check:
        info.update(checked=False, reason="--no-check: written without running it in onnxruntime")
        return info
    import onnxruntime as ort  # check_onnx_available() made sure it is there

    session = ort.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    info["input_names"] = names
    values = list(inputs.values())  # the program's inputs flatten in the dict's order
    out = session.run(None, {n: v.numpy() for n, v in zip(names, values)})[0]
    info["max_abs_diff"] = max_diff(torch.from_numpy(out), reference)
    return info


def export_run(run_dir: Path, ckpt: str = "best", fmt: str = "pt2", out: Path | None = None, trust: bool = False,
               tolerance: float = 1e-4, check_samples: int = 64, onnx_check: bool = True) -> dict[str, Any]:
    """Export a run's model to `out` (default <run>/export/<stamp>/); `onnx_check=False` (--no-check) writes
    model.onnx without running it in onnxruntime, and says so in the artifact and the printed result."""
    run_dir = Path(run_dir).resolve()
    record, folder = check_request(run_dir, fmt, out, tolerance, check_samples, onnx_check)
    cfg = run_config(run_dir, record)
    path = checkpoint_path(run_dir, ckpt)
    model = load_model(cfg, path, trust)

    started = time.time()
    datamodule = training_data(cfg)
    program = Exportable(model, model.task)
    inputs = input_batch(model, datamodule, check_samples)
    meta = artifact_meta(model, datamodule, inputs, run_dir, record, cfg, path, ckpt)
    checks = write_checked(folder, program, inputs, meta, fmt, tolerance, onnx_check, started)

    if folder.is_relative_to(run_dir):
        with RunFolder(run_dir).editing() as current:
            current.setdefault("exports", []).append(
                {"folder": str(folder), "ckpt": ckpt, "format": fmt, "checks": checks, "created": meta["created"]}
            )
    return {"folder": str(folder), **meta}


def check_request(run_dir: Path, fmt: str, out: Path | None, tolerance: float, check_samples: int,
                  onnx_check: bool) -> tuple[dict[str, Any], Path]:
    """The run's record and the artifact folder, once the options and the run are fit for an export (before any
    model is loaded)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}; expected one of {list(FORMATS)}")
    if not tolerance > 0 or check_samples < 1:
        raise UserError(f"--tolerance must be > 0 and --check-samples >= 1, got {tolerance} and {check_samples}")
    if fmt in ("onnx", "both"):
        check_onnx_available(onnx_check)
    record = read_run(run_dir, need_completed=False)
    if record.get("status") == "running" and pid_alive(record.get("pid")):
        raise UserError(f"{run_dir} is still being trained by process {record.get('pid')}; export it when it ends")
    if record.get("status") != "completed":
        raise UserError(f"{run_dir}: run status is {record.get('status')!r}, not 'completed'; only a completed run "
                        f"is exported")
    folder = Path(out).resolve() if out else run_dir / EXPORTS / stamp()
    if folder.exists():
        raise UserError(f"--out {folder} already exists; choose a new folder (nothing is overwritten)")
    return record, folder


def training_data(cfg):
    """The run's data module, set up on its training split (normalisation and vocabularies come from it, as in
    training), with the run's threads and seed."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.get("seed") or 0), verbose=False)
    try:
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
    except Exception as e:  # noqa: BLE001
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"data: cannot build the run's data set for the self-check ({first})") from None
    return datamodule


def artifact_meta(model, datamodule, inputs: dict, run_dir: Path, record: dict, cfg, path: Path,
                  ckpt: str) -> dict[str, Any]:
    """mmfuse_artifact.json before its checks: what the program takes and returns, and where it came from."""
    return {
        "format_version": FORMAT_VERSION,
        "task": model.task,
        "outputs": "values" if model.task == "regression" else "probabilities",
        "class_names": list(model.hparams.class_names) if model.hparams.get("class_names") else None,
        "inputs": [
            {"name": k, "shape": list(v.shape[1:]), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in inputs.items()
        ],
        "modalities": [
            {"name": m, "kind": s.kind, "shape": list(s.shape), "dtype": s.dtype, "has_mask": s.has_mask}
            for m, s in model.specs.items()
        ],
        "preprocessing": {m: p for m, p in datamodule.preprocessing().items() if m in model.modality_names},
        "source": {
            "run_dir": str(run_dir),
            "checkpoint": str(path),
            "ckpt": ckpt,
            "run_name": record.get("run_name"),
            "fusion": (record.get("choices") or {}).get("fusion") or cfg.fusion.get("name"),
            "data": datamodule.name,
            "data_fingerprint": datamodule.fingerprint(),
            "test_metrics": {k: v for k, v in (record.get("metrics") or {}).items() if k.startswith("test/")},
        },
        "versions": {"torch": torch.__version__},
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }


def write_checked(folder: Path, program: nn.Module, inputs: dict, meta: dict[str, Any], fmt: str, tolerance: float,
                  onnx_check: bool, started: float) -> dict[str, Any]:
    """Write the artifact into a temporary folder, load it back and compare it with the PyTorch model, and rename it
    to `folder` only if every check is within `tolerance` (UserError, code 1, otherwise: nothing is written).
    Fills meta["checks"] and meta["seconds"]; returns the checks."""
    single = {k: v[:1] for k, v in inputs.items()}
    with torch.no_grad():
        reference, reference_single = program(inputs), program(single)
    tmp = folder.parent / f".{folder.name}.tmp"
    tmp.mkdir(parents=True)
    try:
        ep = export_pt2(program, inputs, tmp)
        (tmp / ARTIFACT_JSON).write_text(json.dumps(meta, indent=2))
        # the check runs the program as a user gets it: loaded back from disk
        loaded = Artifact(tmp)
        diffs = {
            "batch": max_diff(loaded(inputs), reference),
            "single_sample": max_diff(loaded(single), reference_single),
        }
        checks: dict[str, Any] = {
            "pt2": {"file": PROGRAM, "max_abs_diff": max(diffs.values()), **diffs},
            "samples": len(reference),
            "tolerance": tolerance,
        }
        if fmt in ("onnx", "both"):
            checks["onnx"] = export_onnx(ep, inputs, reference, tmp, onnx_check)
            if fmt == "onnx":
                (tmp / PROGRAM).unlink()  # onnx alone was asked for; the .pt2 served the conversion
                checks["pt2"]["kept"] = False
        failed = {
            k: c["max_abs_diff"]
            for k, c in checks.items()
            if isinstance(c, dict) and isinstance(c.get("max_abs_diff"), float) and not c["max_abs_diff"] <= tolerance
        }
        if failed:
            raise UserError(
                f"self-check failed: max |exported - PyTorch| {failed} exceeds --tolerance {tolerance}; "
                "nothing was written",
                code=1,
            )
        meta["checks"] = checks
        meta["seconds"] = round(time.time() - started, 3)
        (tmp / ARTIFACT_JSON).write_text(json.dumps(meta, indent=2))
        torch.save({"inputs": {k: v[:4] for k, v in inputs.items()}, "outputs": reference[:4]}, tmp / EXAMPLE)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return checks


def print_result(result: dict[str, Any]) -> None:
    checks = result["checks"]
    print(
        f"exported {result['source']['run_name']} ({result['source']['fusion']}, {result['source']['ckpt']} "
        f"checkpoint) "
        f"to {result['folder']}"
    )
    for fmt in ("pt2", "onnx"):
        c = checks.get(fmt)
        if not c or c.get("kept") is False:
            continue
        diff = c.get("max_abs_diff")
        verdict = (
            f"max |diff| {diff:.3g} vs PyTorch on {checks['samples']} test samples (tolerance {checks['tolerance']:g})"
            if diff is not None
            else f"NOT CHECKED ({c.get('reason', 'no check recorded')})"
        )
        print(f"  {c['file']}: {verdict}")

"""Predictions for raw input files or a manifest of them, from an export artifact or a run (`mmfuse predict`; the
command's options and input forms are in mmfuse/cli/predict.py)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from mmfuse.data.rows import MISSING, Row, cell, read_rows
from mmfuse.deploy.artifact import Artifact, find_artifact
from mmfuse.deploy.preprocess import DESCRIBE, READER_KIND, Preprocessor, file_kind
from mmfuse.errors import UserError

PROG = "mmfuse predict"


def samples_from_files(files: list[str], pre) -> tuple[list[dict[str, Any]], list[str]]:
    """Samples from FILE / MODALITY=FILE arguments; the modality of a bare file follows from its extension."""

    by_modality: dict[str, list[Path]] = {}
    for arg in files:
        name, sep, value = arg.partition("=")
        if sep and name in pre.modalities:
            modality, path = name, Path(value)
        elif sep and not Path(arg).exists():
            raise UserError(f"{arg}: the model has no modality {name!r}; its inputs are {pre.describe()}")
        else:
            path = Path(arg)
            kind = file_kind(path)
            matches = [m for m in pre.modalities if READER_KIND[pre.reader(m)] == kind]
            if not matches:
                what = DESCRIBE[kind] if kind else f"a '{path.suffix or 'no extension'}' file"
                raise UserError(f"{path} is {what}, which this model does not take; its inputs are {pre.describe()}")
            if len(matches) > 1:
                raise UserError(f"{path} could feed {matches}; say which with MODALITY={path}")
            modality = matches[0]
        pre.check_file(modality, path, "input")
        by_modality.setdefault(modality, []).append(path)
    n = max(len(v) for v in by_modality.values())
    uneven = {m: len(v) for m, v in by_modality.items() if len(v) not in (1, n)}
    if uneven:
        raise UserError(
            f"{n} files of one modality but {uneven} of others; give one file per modality, or the same number of each"
        )
    samples = [{m: (v[i] if len(v) == n else v[0]) for m, v in by_modality.items()} for i in range(n)]
    return samples, [" ".join(str(p) for p in s.values()) for s in samples]


def read_manifest(path: Path) -> tuple[list[str], list[Row]]:
    """The header and rows of a CSV/TSV (header on line 1) or JSONL manifest, read as `data=manifest` reads them."""
    if not path.is_file():
        raise UserError(f"--input {path}: no such file")
    try:
        header, rows = read_rows(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    for row in rows:
        if row.problem is not None:
            raise UserError(row.problem[1])
    return header, rows


def samples_from_manifest(path: Path, pre) -> tuple[list[dict[str, Any]], list[str]]:
    header, rows = read_manifest(path)
    if not rows:
        raise UserError(f"--input {path}: no rows")
    columns: dict[str, Any] = {}
    for m in pre.modalities:
        p = pre.params[m]
        if p["reader"] == "numbers":
            if all(c in header for c in p["columns"]):
                columns[m] = p["columns"]
        else:
            columns[m] = next((c for c in (p.get("column"), m) if c and c in header), None)
    columns = {m: c for m, c in columns.items() if c}
    if not columns:
        wanted = {m: pre.params[m].get("column") or pre.params[m].get("columns") or m for m in pre.modalities}
        raise UserError(f"--input {path}: no column feeds the model; expected columns {wanted}, found {sorted(header)}")
    samples, names = [], []
    for row in rows:
        values = {c: cell(v) for c, v in row.values.items()}  # an empty or lacking cell: an absent modality
        sample: dict[str, Any] = {}
        for m, c in columns.items():
            if isinstance(c, list):
                cells = [values[k] for k in c]
                if all(v is not None and v is not MISSING for v in cells):
                    sample[m] = cells
                continue
            value = values[c]
            if value is None or value is MISSING:
                continue
            reader = pre.params[m]["reader"]
            sample[m] = value if reader in ("text", "hf_text") else path.parent / str(value)  # an absolute path stays
        if not sample:
            raise UserError(f"--input {path} line {row.line}: every input is empty")
        samples.append(sample)
        ident = values.get("id", MISSING)
        names.append(f"line {row.line}" if ident is None or ident is MISSING else str(ident))
    return samples, names


def describe(probs, meta: dict[str, Any], top: int) -> list[dict[str, Any]]:
    import torch

    classes = meta.get("class_names") or [str(i) for i in range(probs.shape[1])]
    out = []
    for row in probs:
        if meta["task"] == "regression":
            out.append(
                {"prediction": f"{float(row[0]):.6g}", "probability": None, "others": "", "values": row.tolist()}
            )
            continue
        if meta["task"] == "multilabel":
            chosen = [classes[i] for i in torch.nonzero(row >= 0.5).flatten().tolist()]
            out.append(
                {
                    "prediction": "|".join(chosen) or "(none)",
                    "probability": None,
                    "others": ", ".join(
                        f"{classes[i]} {row[i]:.3f}" for i in row.argsort(descending=True)[:top].tolist()
                    ),
                    "values": row.tolist(),
                }
            )
            continue
        order = row.argsort(descending=True).tolist()
        out.append(
            {
                "prediction": classes[order[0]],
                "probability": float(row[order[0]]),
                "others": ", ".join(f"{classes[i]} {row[i]:.3f}" for i in order[1:top]),
                "values": row.tolist(),
            }
        )
    return out


def resolve_artifact(model: str, trust: bool) -> Path:

    folder = find_artifact(model)
    if folder is not None:
        return folder
    # deferred: exporting needs Lightning, predicting torch only
    from mmfuse.deploy.export import export_run, print_result

    print(f"{PROG}: {model} has no export yet; exporting it first (mmfuse export {model})", file=sys.stderr)
    result = export_run(Path(model), trust=trust)
    print_result(result)
    return Path(result["folder"])


def predict(model: str, files: list[str], manifest: Path | None, batch_size: int = 256, trust: bool = False):
    import torch

    if bool(files) == bool(manifest):
        raise UserError("give input files or --input MANIFEST (one of the two)")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    folder = resolve_artifact(model, trust)
    artifact = Artifact(folder)
    pre = Preprocessor(artifact.meta)
    samples, names = samples_from_manifest(manifest, pre) if manifest else samples_from_files(files, pre)
    wheres = [f"--input {manifest} {n}" if manifest else "input" for n in names]
    outputs = []
    for start in range(0, len(samples), batch_size):
        batch = pre.batch(samples[start : start + batch_size], wheres[start : start + batch_size])
        outputs.append(artifact(batch))
    return artifact, names, torch.cat(outputs)


def write_csv(path: Path, names: list[str], rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    classes = meta.get("class_names") or [str(i) for i in range(len(rows[0]["values"]))]
    value_cols = ["value"] if meta["task"] == "regression" else [f"p_{c}" for c in classes]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "prediction", "probability", *value_cols])
        for name, row in zip(names, rows):
            writer.writerow(
                [
                    name,
                    row["prediction"],
                    "" if row["probability"] is None else f"{row['probability']:.6f}",
                    *[f"{v:.6f}" for v in row["values"]],
                ]
            )
    tmp.rename(path)

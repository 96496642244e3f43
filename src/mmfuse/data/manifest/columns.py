"""Which manifest column feeds which modality: as configured (`data.columns`), otherwise inferred from the values."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mmfuse.data.decode import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from mmfuse.data.manifest.options import MODALITY_KINDS, ColumnOptions
from mmfuse.data.rows import MISSING, Row, cell, is_number

log = logging.getLogger(__name__)


def infer_kind(values: list[Any]) -> str | None:
    """image / audio (every value a path with such an extension), tabular (every value a number), else text."""
    if not values:
        return None
    if all(isinstance(v, str) for v in values):
        suffixes = {Path(v).suffix.lower() for v in values}
        if suffixes <= IMAGE_EXTENSIONS:
            return "image"
        if suffixes <= AUDIO_EXTENSIONS:
            return "audio"
    if all(is_number(v) and not isinstance(v, list) for v in values):
        return "tabular"
    return "text"


def configured_columns(path: Path, header: list[str], options: ColumnOptions) -> dict[str, Any]:
    """`data.columns`, checked against the header: one column per modality, a list for tabular."""
    columns: dict[str, Any] = {}
    for kind, value in options.columns.items():
        names = [value] if isinstance(value, str) else list(value)
        if kind != "tabular" and len(names) != 1:
            raise ValueError(f"data.columns.{kind} must name one column, got {names}")
        for c in names:
            if c not in header:
                raise ValueError(f"data.columns.{kind}={c!r} is not a column of manifest {path}; "
                                 f"its columns are {header}")
        columns[kind] = names if kind == "tabular" else names[0]
    return columns


def infer_columns(path: Path, header: list[str], rows: list[Row], options: ColumnOptions, label_column: str,
                  split_column: str) -> dict[str, Any]:
    """Modality -> column (tabular: a list of columns), in the order of MODALITY_KINDS."""
    if label_column not in header:
        raise ValueError(f"manifest {path} has no label column '{label_column}' (data.label_column); "
                         f"its columns are {header}")
    columns = configured_columns(path, header, options)
    taken = {c for v in columns.values() for c in ([v] if isinstance(v, str) else v)}
    special = {label_column, split_column, *options.ignore}
    found: dict[str, list[str]] = {}
    for c in header:
        if c in special or c in taken:
            continue
        values = [cell(r.values.get(c)) for r in rows if r.problem is None]
        kind = infer_kind([v for v in values if v is not None and v is not MISSING])
        if kind is None:
            log.warning("manifest %s: column '%s' is empty everywhere; ignored", path, c)
        elif kind in columns:
            log.warning("manifest %s: column '%s' looks like %s, but data.columns.%s is set; ignored", path, c, kind,
                        kind)
        else:
            found.setdefault(kind, []).append(c)
    for kind, names in found.items():
        if kind != "tabular" and len(names) > 1:
            raise ValueError(f"manifest {path}: columns {names} all look like {kind}; choose one with "
                             f"data.columns.{kind}=<column> and list the others in data.ignore")
        columns[kind] = names if kind == "tabular" else names[0]
    if options.modalities is not None:
        lacking = [m for m in options.modalities if m not in columns]
        if lacking:
            raise ValueError(f"data.modalities asks for {lacking}, but manifest {path} has no such column "
                             f"(found {columns}); set data.columns.<modality>=<column>")
        columns = {m: columns[m] for m in options.modalities}
    if not columns:
        raise ValueError(f"manifest {path}: no input columns found besides '{label_column}' "
                         f"(columns {header}); set data.columns")
    return {m: columns[m] for m in MODALITY_KINDS if m in columns}

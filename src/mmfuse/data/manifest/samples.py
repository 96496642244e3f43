"""Manifest rows -> samples: the checks that need no file (label present, split name, cells of every input).

A bad row is handed to the error policy (`SampleErrors`: raise, or skip and count by reason) and left out.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfuse.data.manifest.options import LabelOptions, label_text
from mmfuse.data.readers import SampleErrors
from mmfuse.data.rows import MISSING, Row, cell, is_number

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}


@dataclass
class Sample:
    row: Row
    label: list[str]                               # the label's tokens (several for multilabel)
    split: str | None                              # from the split column; None: the seeded split decides
    absent: set[str] = field(default_factory=set)  # modalities missing in this row (allow_missing)


def where(path: Path, row: Row, column: str | None = None) -> str:
    """How errors name a row: the manifest, its 1-based line and the column."""
    return f"manifest {path} line {row.line}" + (f", column '{column}'" if column else "")


def label_tokens(value: Any, options: LabelOptions) -> list[str]:
    if isinstance(value, list):
        return [label_text(v) for v in value if label_text(v)]
    text = label_text(value)
    if options.label_separator and options.task in ("auto", "multilabel"):
        return [t.strip() for t in text.split(options.label_separator) if t.strip()]
    return [text]


def parse_rows(path: Path, rows: list[Row], columns: dict[str, Any], labels: LabelOptions, split_column: str,
               allow_missing: bool, errors: SampleErrors) -> list[Sample]:
    """The rows that pass every check that needs no file, as samples."""
    good = []
    has_split = split_column in {c for r in rows for c in r.values}
    for row in rows:
        if row.problem is not None:
            errors(*row.problem)
            continue
        label = cell(row.values.get(labels.label_column, MISSING))
        if label is MISSING:
            errors("missing_column",
                   f"{where(path, row)}: no column '{labels.label_column}' (the label); the row lacks it")
            continue
        if label is None:
            errors("missing_label", f"{where(path, row, labels.label_column)}: the label is empty")
            continue
        split = None
        if has_split:
            raw = cell(row.values.get(split_column, MISSING))
            split = SPLIT_NAMES.get(str(raw).lower()) if raw not in (None, MISSING) else None
            if split is None:
                errors("bad_split", f"{where(path, row, split_column)}: split {raw if raw is not MISSING else None!r}; "
                                    f"expected one of {sorted(SPLIT_NAMES)}")
                continue
        absent = absent_inputs(path, row, columns, allow_missing, errors)
        if absent is not None:
            good.append(Sample(row, label_tokens(label, labels), split, absent))
    return good


def absent_inputs(path: Path, row: Row, columns: dict[str, Any], allow_missing: bool,
                  errors: SampleErrors) -> set[str] | None:
    """The modalities whose cells are empty or lacking (allow_missing), or None for a bad row (reported)."""
    absent: set[str] = set()
    for kind, column in columns.items():
        for c in (column if kind == "tabular" else [column]):
            value = cell(row.values.get(c, MISSING))
            if value is MISSING or value is None:
                if allow_missing:
                    absent.add(kind)
                    continue
                if value is MISSING:
                    errors("missing_column", f"{where(path, row)}: no column '{c}' ({kind}); the row lacks it")
                else:
                    errors("missing_value", f"{where(path, row, c)}: empty {kind} value "
                                            "(data.allow_missing=true makes it an absent modality)")
                return None
            if kind == "tabular" and not (is_number(value) and math.isfinite(float(value))):
                errors("bad_number", f"{where(path, row, c)}: {value!r} is not a finite number")
                return None
    if len(absent) == len(columns):
        errors.count("no_modality")
        log.warning("%s: every input is missing; skipped", where(path, row))
        return None
    return absent

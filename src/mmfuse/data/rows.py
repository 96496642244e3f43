"""Rows of a manifest file (CSV, TSV or JSONL): the one reader that `data=manifest` and `mmfuse predict` share.

Standard library only, so `predict` reads its input without Lightning. A
byte-order mark is dropped (spreadsheet programs write one into CSV), so the
first column keeps its name in both.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark
MISSING = object()  # a column the row lacks (short CSV row, JSONL object without the key)


@dataclass
class Row:
    line: int                               # 1-based line of the file where the row starts (a CSV header is line 1)
    values: dict[str, Any]                  # column -> raw value, or MISSING
    problem: tuple[str, str] | None = None  # (reason, message) when the row itself is malformed


def cell(value: Any) -> Any:
    """A normalised cell: stripped strings; None for an empty one (empty string, NaN, empty list); MISSING kept."""
    if value is MISSING or value is None:
        return value
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list) and not value:
        return None
    return value


def is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
            return True
        except ValueError:
            return False
    return False


def read_rows(path: Path) -> tuple[list[str], list[Row]]:
    """Header (column names in order of appearance) and non-blank rows of a CSV/TSV or JSONL manifest.

    A malformed row (extra CSV fields, invalid JSON) comes back with its `problem`, for the caller's error
    policy; a file that cannot be read at all raises ValueError naming it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            return _read_csv(path, CSV_SUFFIXES[suffix])
        if suffix in JSONL_SUFFIXES:
            return _read_jsonl(path)
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read manifest {path}: expected UTF-8 text ({e})") from None
    raise ValueError(f"manifest {path}: unknown format '{suffix}'; expected .csv, .tsv or .jsonl")


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[Row]]:
    with open(path, newline="", encoding=ENCODING) as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError(f"manifest {path} is empty; expected a header line naming the columns")
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ValueError(f"manifest {path}: the header names columns {dupes} more than once")
        rows, last = [], reader.line_num
        for fields in reader:
            line, last = last + 1, reader.line_num
            if not any(x.strip() for x in fields):
                continue  # blank line
            values = {c: (fields[i] if i < len(fields) else MISSING) for i, c in enumerate(header)}
            problem = None
            if len(fields) > len(header):
                problem = ("extra_fields",
                           f"manifest {path} line {line}: {len(fields)} fields for {len(header)} columns {header}")
            rows.append(Row(line, values, problem))
    return header, rows


def _read_jsonl(path: Path) -> tuple[list[str], list[Row]]:
    header: dict[str, None] = {}
    rows = []
    with open(path, encoding=ENCODING) as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                rows.append(Row(line, {}, ("invalid_json", f"manifest {path} line {line}: not valid JSON ({e})")))
                continue
            if not isinstance(obj, dict):
                rows.append(Row(line, {}, ("invalid_json", f"manifest {path} line {line}: expected a JSON object, "
                                                           f"got {type(obj).__name__}")))
                continue
            header.update(dict.fromkeys(obj))
            rows.append(Row(line, obj))
    for row in rows:
        if row.problem is None:
            row.values = {c: row.values.get(c, MISSING) for c in header}
    return list(header), rows

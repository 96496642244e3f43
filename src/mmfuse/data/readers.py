"""Reading data files with errors that name the file, row or key, and the skip-and-count policy.

`data.on_error` chooses what a bad *sample* does (an unreadable image or
WAV, an unknown label, a missing column, a non-finite value):
`raise` stops with a ValueError/FileNotFoundError that names where and what
was expected; `skip` drops the sample and counts it by reason in
`SampleErrors.skipped`, which DataModules expose as `datamodule.skipped`.
A bad *file* (missing, unreadable, wrong shape, missing key) always raises:
there is no sample to skip.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
WARN_AT_MOST = 5  # skipped samples named one by one in the log; the rest are only counted


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"data.on_error={on_error!r}; expected one of {list(ON_ERROR)}")
    return on_error


class SampleErrors:
    """Raise at the first bad sample (on_error=raise) or skip it and count it by reason (on_error=skip)."""

    def __init__(self, on_error: str = "raise"):
        self.on_error = check_on_error(on_error)
        self.skipped: Counter[str] = Counter()

    def __call__(self, reason: str, message: str, error: type[Exception] = ValueError) -> None:
        if self.on_error == "raise":
            raise error(f"{message} (data.on_error=skip skips such samples and counts them)")
        self.skipped[reason] += 1
        total = sum(self.skipped.values())
        if total <= WARN_AT_MOST:
            log.warning("skipping a sample: %s", message)
        elif total == WARN_AT_MOST + 1:
            log.warning("skipping more samples; the counts per reason are in datamodule.skipped")

    def count(self, reason: str, n: int = 1) -> None:
        """Count `n` samples dropped whatever `on_error` says: they are not errors (e.g. nothing observed at all)."""
        self.skipped[reason] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.skipped.items()))


def require_file(path: str | Path, what: str, hint: str = "") -> Path:
    path = Path(path)
    if not path.is_file():
        where = "" if path.parent.is_dir() else f"; its folder {path.parent} does not exist either"
        raise FileNotFoundError(f"{what} not found: {path}{where}{'. ' + hint if hint else ''}")
    return path


def load_npy(path: str | Path, what: str, check: Callable[[tuple[int, ...]], bool], expected: str) -> np.ndarray:
    """A .npy array whose shape passes `check`, memory-mapped (read by the caller as needed).

    Raises FileNotFoundError for a missing file, ValueError naming the file for
    one numpy cannot read, and ValueError naming the file, the shape found and
    `expected` for a wrong shape.
    """
    path = require_file(path, what)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
        raise ValueError(f"cannot read {what} {path}: expected a .npy array of shape {expected} ({e})") from None
    if not isinstance(array, np.ndarray) or not check(array.shape):
        raise ValueError(f"{what} {path} has shape {getattr(array, 'shape', None)}; expected {expected}")
    return array


def non_finite_rows(array: torch.Tensor) -> torch.Tensor:
    """(N,) bool: samples holding a NaN or infinite value anywhere."""
    if not array.is_floating_point():
        return torch.zeros(len(array), dtype=torch.bool)
    return ~torch.isfinite(array.reshape(len(array), -1)).all(1)


def read_image(path: str | Path):
    """A fully decoded PIL image; ValueError naming the file if it is truncated or not an image."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            return img.copy()
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
        raise ValueError(f"cannot read image file {path}: expected an image PIL can decode ({e})") from None

"""How mmfuse reports a mistake: one clear line on stderr, a traceback only on request.

`--verbose` or HYDRA_FULL_ERROR=1 shows the traceback as well.
"""
from __future__ import annotations

import os
import sys
import traceback


def verbose() -> bool:
    return bool(os.environ.get("HYDRA_FULL_ERROR")) or bool(os.environ.get("MMFUSE_VERBOSE"))


def report(prefix: str, exc: BaseException) -> None:
    if verbose():
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).strip() or type(exc).__name__
    print(f"{prefix}: error: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    """Stop before any work starts. SystemExit passes through OmegaConf and Hydra untouched."""
    print(f"mmfuse: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)

"""How mmfuse reports a mistake: one clear line on stderr, a traceback only on request.

`UserError` is the one exception type for a mistake in the user's input or setup (a path, an option, a record);
library code raises it (or a plain exception) and the command line (`mmfuse.cli`) turns it into one line and its
exit status. `--verbose` or HYDRA_FULL_ERROR=1 shows the traceback as well.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn


class UserError(Exception):
    """A mistake in the input, said in one line; `code` is the exit status (2: bad input, 1: the work failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def verbose() -> bool:
    return bool(os.environ.get("HYDRA_FULL_ERROR")) or bool(os.environ.get("MMFUSE_VERBOSE"))


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: Hydra wraps a constructor's own error in an InstantiationException."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def report(prefix: str, exc: BaseException) -> None:
    if verbose():
        traceback.print_exception(exc, file=sys.stderr)
    cause = root_cause(exc)
    message = (str(cause).strip() or type(cause).__name__).splitlines()[0]
    print(f"{prefix}: error: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop while Hydra composes the config (a resolver): Hydra would wrap an exception, but SystemExit passes
    through OmegaConf and Hydra untouched."""
    print(f"mmfuse: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)

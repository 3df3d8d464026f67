"""Helpers shared by the analysis command lines: output checks and one-line errors."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (ValueError) if ``path`` cannot be written, without creating anything."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a directory; give a file path such as {path / 'study.nc'}")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {str(path)!r} is not writable: {str(ancestor)!r} is not a directory")
    try:  # os.access is no guide for root; create (and at once delete) a probe file instead
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(path)!r} is not writable: {err.strerror} in {str(ancestor)!r}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--out {str(path)!r} is not writable (no write permission)")
    return path


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)

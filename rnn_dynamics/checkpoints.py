"""Finished stacks saved one file each, so that a study that dies loses nothing it had finished.

A study writing to ``study.nc`` keeps ``study.nc.parts/<fingerprint>/`` while it runs:
one ``.npz`` per finished stack, written atomically. Rerunning the same configuration
loads those and runs only the missing stacks; a different configuration has another
fingerprint and never mixes with them. The folder is removed once the dataset is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .records import CellRecord


def fingerprint(config: dict) -> str:
    """A short hash of a study configuration (everything that defines its numbers)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class StackCheckpoints:
    """Per-stack record files under ``root / fingerprint``."""

    def __init__(self, root: str | os.PathLike, config: dict):
        self.folder = Path(root) / fingerprint(config)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> list[CellRecord] | None:
        """The saved records of stack ``key``, or None if it has not finished."""
        path = self._path(key)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
            return [
                CellRecord(cell["coords"], {name: archive[f"{i}/{name}"] for name in cell["names"]})
                for i, cell in enumerate(header)
            ]

    def save(self, key: str, records: list[CellRecord]) -> None:
        """Write stack ``key`` atomically (temporary file, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {"header": np.asarray(json.dumps([
            {"coords": r.coords, "names": sorted(r.data)} for r in records]))}
        for i, record in enumerate(records):
            arrays.update({f"{i}/{name}": np.asarray(value) for name, value in record.data.items()})
        fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        """Delete this study's checkpoints, and the parts folder if nothing else is in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass

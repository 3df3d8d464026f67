"""Finished stacks saved one file each, so that a study that dies loses nothing it had finished.

A study writing to ``study.nc`` keeps ``study.nc.parts/<fingerprint>/`` while it runs: one
netCDF file per finished stack (the same format as the study dataset), written
atomically. Rerunning the same configuration loads those and runs only the missing
stacks; a different configuration has another fingerprint and never mixes with them; a
file that cannot be read is reported and its stack recomputed. The folder is removed
once the dataset is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import xarray as xr

from .config import ConfigError
from .records import read_dataset, write_dataset
from .snapshots import StackSnapshot


def fingerprint(config: dict) -> str:
    """A short hash of a study configuration (everything that defines its numbers)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


#: Seconds of a stack's training between two of its snapshots, unless told otherwise (``--snapshot-every``).
SNAPSHOT_EVERY = 600.0


def check_snapshot_every(seconds: float) -> float:
    """``seconds`` if it is a snapshot interval (>= 0; 0: none); ConfigError, which a command names as its flag."""
    if not seconds >= 0:
        raise ConfigError("snapshot_every", f"must be >= 0 seconds (0: no snapshots), got {seconds}")
    return seconds


class StackCheckpoints:
    """Per-stack dataset files under ``root / fingerprint``, and the snapshots of the stacks still training
    (:mod:`.snapshots`), one every ``snapshot_every`` seconds of a stack's training (0: none)."""

    def __init__(self, root: str | os.PathLike, config: dict, snapshot_every: float = SNAPSHOT_EVERY):
        self.folder = Path(root) / fingerprint(config)
        self.snapshot_every = check_snapshot_every(snapshot_every)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.nc"

    def load(self, key: str) -> xr.Dataset | None:
        """The saved dataset of stack ``key``, or None if it has not finished (or its file is unreadable)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return read_dataset(path)
        except (OSError, ValueError, RuntimeError) as err:
            warnings.warn(f"checkpoint {path} could not be read ({err}); its stack is recomputed", stacklevel=2)
            return None

    def snapshot(self, key: str) -> StackSnapshot | None:
        """Where stack ``key`` keeps its snapshot while it trains; None where snapshots are off."""
        if not self.snapshot_every:
            return None
        return StackSnapshot(self.folder.absolute() / f"{key}.snapshot.nc", key, self.snapshot_every)

    def clear_temporary(self) -> None:
        """Remove temporary files a killed run left half-written (the finished stacks are untouched)."""
        for path in self.folder.glob("*.tmp"):
            path.unlink(missing_ok=True)

    def save(self, key: str, stack: xr.Dataset) -> None:
        """Write stack ``key`` atomically (temporary file, then rename)."""
        write_dataset(stack, self._path(key))

    def remove(self) -> None:
        """Delete this study's checkpoints, and the parts folder if nothing else is in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass

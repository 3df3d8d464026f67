"""MNIST in the official layout: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...

Looked for in ``root`` and ``root/mnist``. ``../shared/data/mnist-10k`` (8,000 train and 2,000
test digits in this layout) works as a root unchanged, and so do the official 60k/10k files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from . import DataError, find_file
from .idx import read_idx

FILES = {
    "train_images": ("train-images-idx3-ubyte", 2051),
    "train_labels": ("train-labels-idx1-ubyte", 2049),
    "test_images": ("t10k-images-idx3-ubyte", 2051),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049),
}


def load_mnist(root: str | Path) -> dict[str, np.ndarray]:
    """{'train_images': (N, 28, 28) uint8, 'train_labels': (N,) uint8, 'test_images', 'test_labels'}
    (read once per folder and process; the arrays are read-only)."""
    return _load(Path(root).resolve())


@lru_cache(maxsize=4)
def _load(root: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, (name, magic) in FILES.items():
        path = find_file([root, root / "mnist"], [name, f"{name}.gz"])
        if path is None:
            raise DataError(f"{root / (name + '.gz')}: missing (MNIST files are looked for in {root} and "
                            f"{root / 'mnist'}; fetch them with python -m rnn_dynamics.data fetch mnist, or point "
                            "--data-dir at a folder that holds them)")
        arrays[key] = read_idx(path, magic)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise DataError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.max(initial=0) > 9:
            raise DataError(f"{root}: {split} labels hold {labels.max()}, beyond the digits 0..9")
    return arrays

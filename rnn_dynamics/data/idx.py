"""The IDX format of the MNIST distribution: big-endian magic, dims, then the array (gzipped or not)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from . import DataError

#: Type codes of the IDX format (the third byte of the magic number).
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file; DataError naming the file if it is malformed or truncated."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a damaged gzip stream
        raise DataError(f"{path}: cannot be read ({err})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, not even an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _TYPES or (expected_magic and magic != expected_magic):
        wanted = f"{expected_magic}" if expected_magic else "an IDX magic number"
        raise DataError(f"{path}: wrong magic number {magic} (expected {wanted}); not an IDX file of this kind")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[type_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: truncated or padded: {len(raw) - header} data bytes, expected {expected} "
                        f"for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as IDX (gzipped when ``path`` ends in .gz): fixtures for tests and users."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
    return path

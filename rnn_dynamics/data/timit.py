"""TIMIT in the LDC layout: TIMIT/{TRAIN,TEST}/DR*/SPEAKER/*.WAV (NIST SPHERE) with .PHN alignments.

The 61 TIMIT phones are folded to the 39 classes of Lee & Hon (1989), the usual set for
framewise phoneme classification; the SA sentences (read by every speaker) are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import DataError

#: Lee & Hon (1989): 61 TIMIT phones -> 39 classes (closures, pauses and the glottal stop -> sil).
FOLD = {"ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
        "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw", "pcl": "sil", "tcl": "sil", "kcl": "sil",
        "bcl": "sil", "dcl": "sil", "gcl": "sil", "h#": "sil", "pau": "sil", "epi": "sil", "q": "sil"}
CLASSES = tuple(sorted({"iy", "ih", "eh", "ae", "ah", "uw", "uh", "aa", "ey", "ay", "oy", "aw", "ow", "er", "l", "r",
                        "w", "y", "m", "n", "ng", "ch", "jh", "dh", "b", "d", "dx", "g", "p", "t", "k", "z", "v",
                        "f", "th", "s", "sh", "hh", "sil"}))


def read_sphere(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples float32 in [-1, 1), sample rate) of a NIST SPHERE file of 16-bit PCM."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(b"NIST_1A"):
        raise DataError(f"{path}: not a NIST SPHERE file (no NIST_1A header)")
    try:
        header_size = int(raw[8:16])
        fields = {}
        for line in raw[16:header_size].decode("ascii").splitlines():
            parts = line.split(None, 2)
            if parts and parts[0] == "end_head":
                break
            if len(parts) == 3:
                fields[parts[0]] = parts[2].strip()
        count, rate = int(fields["sample_count"]), int(fields["sample_rate"])
        width, order = int(fields.get("sample_n_bytes", 2)), fields.get("sample_byte_format", "01")
    except (KeyError, ValueError) as err:
        raise DataError(f"{path}: malformed SPHERE header ({err})") from None
    if width != 2 or fields.get("sample_coding", "pcm") != "pcm" or fields.get("channel_count", "1") != "1":
        raise DataError(f"{path}: only mono 16-bit PCM SPHERE files are read")
    data = raw[header_size:header_size + 2 * count]
    if len(data) != 2 * count:
        raise DataError(f"{path}: truncated: {len(data) // 2} of {count} samples")
    samples = np.frombuffer(data, dtype="<i2" if order == "01" else ">i2").astype(np.float32) / 32768.0
    return samples, rate


def read_phn(path: str | Path) -> list[tuple[int, int, str]]:
    """The (start sample, end sample, phone) lines of a TIMIT .PHN file."""
    path = Path(path)
    segments = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise DataError(f"{path}: line {number} is not 'start end phone': {line!r}")
        segments.append((int(parts[0]), int(parts[1]), parts[2]))
    return segments


def fold(phone: str) -> str:
    """The 39-class label of a TIMIT phone."""
    return FOLD.get(phone, phone)


def timit_utterances(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(WAV, PHN) pairs of ``split`` (TRAIN or TEST) under root/TIMIT, SA sentences left out, sorted."""
    folder = Path(root) / "TIMIT" / split.upper()
    pairs = []
    for wav in sorted(folder.glob("*/*/*.WAV")):
        if wav.stem.upper().startswith("SA"):
            continue
        phn = wav.with_suffix(".PHN")
        if not phn.is_file():
            raise DataError(f"{phn}: missing beside {wav.name}")
        pairs.append((wav, phn))
    return pairs

"""Small data files in the standard formats, made by the tests: MNIST IDX, PTB text, TIMIT (SPHERE + PHN), and the
.npz of sequences the npz task reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnn_dynamics.data.idx import write_idx

WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "<unk>", "N")


def make_mnist(folder: Path, train: int = 600, test: int = 200, gz: bool = True) -> Path:
    """Digits whose class is written in their brightest row, so that a network can learn them."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = (rng.random((count, 28, 28)) * 60).astype(np.uint8)
        images[np.arange(count), 2 * labels + 4, :] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return folder


def make_ptb(folder: Path, lines: int = 400) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", lines), ("valid", lines // 4), ("test", lines // 4)):
        text = "".join(" " + " ".join(rng.choice(WORDS, rng.integers(3, 12))) + " \n" for _ in range(count))
        (folder / f"ptb.{split}.txt").write_text(text)
    return folder


def write_sphere(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """A NIST SPHERE file of 16-bit little-endian PCM, as TIMIT's .WAV files are."""
    header = (f"NIST_1A\n   1024\nsample_count -i {len(samples)}\nsample_rate -i {rate}\nchannel_count -i 1\n"
              "sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_coding -s3 pcm\nend_head\n").encode()
    path.write_bytes(header.ljust(1024, b" ") + (samples * 32767).astype("<i2").tobytes())
    return path


def make_timit(root: Path, utterances: int = 6) -> Path:
    """TIMIT/{TRAIN,TEST}/DR1/SPEAKER/*.WAV with .PHN: tones whose pitch is the phone."""
    rng = np.random.default_rng(2)
    phones = {"h#": 0.0, "aa": 300.0, "iy": 700.0, "s": 3000.0, "pcl": 0.0}
    for split in ("TRAIN", "TEST"):
        folder = root / "TIMIT" / split / "DR1" / "FAKS0"
        folder.mkdir(parents=True, exist_ok=True)
        for u in range(utterances):
            segments, samples, start = [], [], 0
            for phone in ["h#", *rng.choice(list(phones)[1:], 8), "h#"]:
                length = int(rng.integers(800, 3200))
                t = np.arange(length) / 16_000
                samples.append(0.3 * np.sin(2 * np.pi * phones[phone] * t) + 0.01 * rng.standard_normal(length))
                segments.append(f"{start} {start + length} {phone}")
                start += length
            write_sphere(folder / f"SX{u}.WAV", np.concatenate(samples).astype(np.float32))
            (folder / f"SX{u}.PHN").write_text("\n".join(segments) + "\n")
        write_sphere(folder / "SA1.WAV", np.zeros(1600, np.float32))  # SA sentences are left out
        (folder / "SA1.PHN").write_text("0 1600 h#\n")
    return root


def make_sequences(path: Path, train: int = 96, test: int = 48, steps: int = 12, channels: int = 3,
                   targets: str = "classes", lengths: bool = False) -> Path:
    """An .npz of the npz task's layout whose targets follow from the inputs: ``classes``, which of the
    channels sums highest over the sequence; ``classes_per_step``, which is highest at each step; ``values``,
    each channel's mean (K = channels); ``values_per_step``, the channels one step earlier (0 at the first step);
    ``tokens``, integer inputs 0..channels-1 whose class is the first.

    ``lengths``: sequences of 3..steps steps, padded to ``steps`` with what no task may read (NaN inputs, token
    -1, label -100), their lengths in train_lengths and test_lengths; the targets are those of each sequence's
    own steps."""
    rng = np.random.default_rng(3)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        if targets == "tokens":
            x = rng.integers(0, channels, (count, steps))
        else:
            x = rng.standard_normal((count, steps, channels)).astype(np.float32)
        own = rng.integers(3, steps + 1, count) if lengths else np.full(count, steps)
        padding = np.arange(steps) >= own[:, None]
        x[padding] = -1 if targets == "tokens" else np.nan
        y = {"classes": lambda: np.nansum(x, axis=1).argmax(axis=-1),
             "classes_per_step": lambda: np.where(padding, -100, x.argmax(axis=-1)),
             "values": lambda: np.nanmean(x, axis=1).astype(np.float64),
             "values_per_step": lambda: np.where(padding[..., None], np.nan,
                                                 np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)),
             "tokens": lambda: x[:, 0]}[targets]()
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
        if lengths:
            arrays[f"{split}_lengths"] = own
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path

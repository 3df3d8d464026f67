"""Framewise phoneme data: log-mel frames (25 ms windows every 10 ms, librosa) and one label per frame.

From TIMIT when ``root/TIMIT`` holds the LDC layout; otherwise from a corpus synthesised once
with espeak-ng and cached in ``root/espeak-speech/``: sentences of the Penn Treebank's
validation text read by four voices for training and a fifth, unheard one for testing, each
sentence at one of three speeds and three pitches, labelled with the synthesiser's own phoneme
timings.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..records import atomic_write
from . import DataError
from .espeak import Synthesizer, phoneme_class
from .ptb import load_ptb_text
from .timit import CLASSES as TIMIT_CLASSES
from .timit import fold, read_phn, read_sphere, timit_utterances

SAMPLE_RATE = 16_000
WINDOW_SECONDS, HOP_SECONDS, MEL_BANDS = 0.025, 0.010, 40
#: FFT size: the 400-sample (25 ms) window sits in the middle of each 512-sample frame.
N_FFT = 512
#: Voices of the synthesised corpus: the first four train, the last one tests.
TRAIN_VOICES = ("en-us", "en", "en-gb-scotland", "en-029")
TEST_VOICE = "en-gb-x-rp"
SPEEDS, PITCHES = (140, 165, 190), (35, 50, 65)
SENTENCES = 200
CORPUS_VERSION = 2


def log_mel_frames(samples: np.ndarray, rate: int) -> np.ndarray:
    """(frames, 40) log-mel energies of ``samples``: 25 ms windows every 10 ms, at 16 kHz."""
    import librosa

    if rate != SAMPLE_RATE:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE)
    window, hop = round(WINDOW_SECONDS * SAMPLE_RATE), round(HOP_SECONDS * SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=samples, sr=SAMPLE_RATE, n_fft=N_FFT, win_length=window, hop_length=hop,
                                         n_mels=MEL_BANDS, center=False)
    return np.log(mel + 1e-6).T.astype(np.float32)


def frame_labels(starts_seconds: np.ndarray, labels: list[int], frames: int, silence: int) -> np.ndarray:
    """The label in force at each frame's centre, given segment starts in seconds (before the first: silence)."""
    centres = np.arange(frames) * HOP_SECONDS + N_FFT / 2 / SAMPLE_RATE
    index = np.searchsorted(starts_seconds, centres, side="right") - 1
    table = np.asarray([silence, *labels])
    return table[index + 1]


def _sentences(root: Path, count: int) -> list[str]:
    """Sentences of 5 to 20 words from the PTB validation text, <unk> dropped, N read as 'number'."""
    chosen = []
    for line in load_ptb_text(root)["valid"].splitlines():
        words = [("number" if w == "N" else w) for w in line.split() if w != "<unk>"]
        if 5 <= len(words) <= 20 and all(re.fullmatch(r"[a-z'.&-]+", w) for w in words):
            chosen.append(" ".join(words))
        if len(chosen) == count:
            break
    return chosen


def synthesise_corpus(root: Path, sentences: int = SENTENCES) -> dict[str, np.ndarray]:
    """The espeak-ng corpus as arrays: features and frame labels per split, and the phoneme classes."""
    synthesizer = Synthesizer()
    utterances = {"train": [], "test": []}
    for i, sentence in enumerate(_sentences(root, sentences)):
        speed, pitch = SPEEDS[i % 3], PITCHES[(i // 3) % 3]
        for voice in (*TRAIN_VOICES, TEST_VOICE):
            samples, rate, events = synthesizer.synthesize(sentence, voice, speed, pitch)
            features = log_mel_frames(samples, rate)
            starts = np.asarray([sample / rate for sample, _ in events])
            names = [phoneme_class(name) for _, name in events]
            utterances["test" if voice == TEST_VOICE else "train"].append((features, starts, names))
    classes = sorted({name for split in utterances.values() for _, _, names in split for name in names} | {"sil"})
    index = {name: i for i, name in enumerate(classes)}
    arrays = {"classes": np.asarray(classes)}
    for split, items in utterances.items():
        arrays[f"{split}_features"] = np.concatenate([f for f, _, _ in items])
        arrays[f"{split}_labels"] = np.concatenate([frame_labels(s, [index[n] for n in names], len(f), index["sil"])
                                                    for f, s, names in items])
    return arrays


def _from_timit(root: Path) -> dict[str, np.ndarray]:
    index = {name: i for i, name in enumerate(TIMIT_CLASSES)}
    arrays = {"classes": np.asarray(TIMIT_CLASSES)}
    for split in ("train", "test"):
        features, labels = [], []
        for wav, phn in timit_utterances(root, split):
            samples, rate = read_sphere(wav)
            frames = log_mel_frames(samples, rate)
            segments = read_phn(phn)
            starts = np.asarray([start / rate for start, _, _ in segments])
            features.append(frames)
            labels.append(frame_labels(starts, [index[fold(p)] for _, _, p in segments], len(frames), index["sil"]))
        if not features:
            raise DataError(f"{root / 'TIMIT' / split.upper()}: no utterances (expected DR*/SPEAKER/*.WAV and .PHN)")
        arrays[f"{split}_features"], arrays[f"{split}_labels"] = np.concatenate(features), np.concatenate(labels)
    return arrays


def _save_npz(path: str, arrays: dict) -> None:
    with open(path, "wb") as handle:  # np.savez given a name would add ".npz" to it
        np.savez(handle, **arrays)


@lru_cache(maxsize=2)
def load_speech(root: Path) -> tuple[dict[str, np.ndarray], str]:
    """({'train_features': (frames, 40), 'train_labels', 'test_features', 'test_labels', 'classes'}, source)."""
    if (root / "TIMIT").is_dir():
        return _from_timit(root), "TIMIT (LDC layout), 61 phones folded to 39"
    cache = root / "espeak-speech" / f"corpus-v{CORPUS_VERSION}.npz"
    source = (f"espeak-ng synthesis: {SENTENCES} PTB sentences, voices {', '.join(TRAIN_VOICES)} (train) and "
              f"{TEST_VOICE} (test), phoneme timings from the synthesiser")
    if not cache.is_file():
        arrays = synthesise_corpus(root)
        atomic_write(cache, lambda tmp: _save_npz(tmp, arrays))
    try:
        with np.load(cache, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}, source
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # a damaged cache
        raise DataError(f"{cache}: unreadable ({err}); delete it to synthesise the corpus again") from None

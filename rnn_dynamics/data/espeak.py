"""Speech synthesised offline with espeak-ng, with the time of every phoneme.

espeak-ng's library reports a phoneme event (its mnemonic and the sample where it starts)
while it synthesises; :class:`Synthesizer` collects the audio and those events through
ctypes, so the frame labels come from the synthesiser's own phoneme timings. Needs the
shared library of Debian's espeak-ng package (libespeak-ng.so.1).
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from . import DataError

_SYNCHRONOUS, _PHONEME_EVENTS, _CHARACTER_POSITIONS = 2, 1, 1
_EVENT_END_OF_LIST, _EVENT_PHONEME = 0, 7
_RATE, _PITCH = 1, 3


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def phoneme_class(mnemonic: str) -> str:
    """espeak's mnemonic without its stress / variant digit (@2 -> @); pauses (_, _:) -> sil."""
    if mnemonic.startswith("_") or not mnemonic.strip():
        return "sil"
    stripped = mnemonic.rstrip("0123456789")
    return stripped or mnemonic


class Synthesizer:
    """One espeak-ng instance synthesising into memory (one per process)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._start()
        return cls._instance

    def _start(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError:
            raise DataError("libespeak-ng.so.1: not found; install espeak-ng (apt-get install espeak-ng), or give "
                            "TIMIT under DATA_DIR/TIMIT") from None
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS)
        if self.rate <= 0:
            raise DataError("libespeak-ng.so.1: espeak_Initialize failed (is espeak-ng-data installed?)")
        self._chunks, self._events = [], []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the library may call it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode("ascii", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, speed: int, pitch: int):
        """(samples float32 in [-1, 1), sample rate, [(start sample, phoneme mnemonic), ...])."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DataError(f"espeak-ng: no voice {voice!r} (espeak-ng --voices lists them)")
        self.lib.espeak_SetParameter(_RATE, speed, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._chunks, self._events = [], []
        encoded = text.encode()
        self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _CHARACTER_POSITIONS, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        return samples, self.rate, list(self._events)

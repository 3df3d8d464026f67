"""Framewise phoneme classification of speech (Le, Jaitly & Hinton 2015, section 4.4: TIMIT, where
0.01 I beat the identity): log-mel frames in, the phoneme of every frame out, frame error rate.

Utterances are concatenated per split and cut into windows of ``seq_len`` frames; each window
is one sequence, read out at every frame. Features are standardised with the training
frames' mean and standard deviation. Data: TIMIT under DATA_DIR/TIMIT when present, else the
corpus synthesised with espeak-ng (:mod:`rnn_dynamics.data.speech`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import data_root
from ..data.speech import MEL_BANDS, load_speech
from .base import TOOLKIT_BUDGET, TOOLKIT_BUDGET_SOURCES, Preset, Task, cross_entropy, prior_logits, register_task


def windows(features: np.ndarray, labels: np.ndarray, length: int, limit: int | None):
    """Inputs (T, W, F) and labels (T, W) of the first ``limit`` whole windows of ``length`` frames."""
    count = len(labels) // length
    count = min(count, limit) if limit else count
    x = torch.from_numpy(features[:count * length].reshape(count, length, -1)).transpose(0, 1).contiguous()
    y = torch.from_numpy(labels[:count * length].astype(np.int64).reshape(count, length)).T.contiguous()
    return x, y


@register_task("speech")
class SpeechTask(Task):
    """Framewise phoneme classification of log-mel frames (TIMIT, else espeak-ng speech), frame error rate."""

    default_seq_len = 200
    presets = {
        "tiny": Preset((64, 32), description="64 training and 32 test windows, for tests"),
        "default": Preset((None, None), description="every window, the study's own settings"),
        "quick": Preset((None, None), {"hidden": 100, "batch_size": 16, "optimizer": "adam", "lr": 1e-3,
                                       "clip": 1.0, "steps": 1500, "probe_every": 250},
                        description="every window, 1,500 Adam updates at lr 1e-3"),
        "paper": Preset((None, None), {"hidden": 500, "layers": 4, "optimizer": "sgd", "clip": 1.0,
                                       **TOOLKIT_BUDGET},
                        sources={"hidden": "Le et al. 2015, section 4.4: 500 units per layer (unconfirmed)",
                                 "layers": "4 layers (unconfirmed)", "optimizer": "SGD (unconfirmed)",
                                 "clip": "clipped gradients (unconfirmed)", **TOOLKIT_BUDGET_SOURCES},
                        description="TIMIT-sized networks of the paper (unconfirmed), with the 0.01 I init worth "
                                    "adding (--inits scaled_identity); "
                                    "lr 0.01 for 100,000 updates, this toolkit's budget, not the paper's"),
    }
    input_size = MEL_BANDS
    readout = "all"
    metric_name = "frame_error_rate"
    metric_long_name = "test frame error rate"
    metric_units = "1"
    metric_higher_is_better = False
    baseline = "always predict the most frequent training phoneme (majority-class frame error)"

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None):
        arrays, self.source = load_speech(data_root(data_dir).resolve())
        self.seq_len, self.classes = seq_len, [str(c) for c in arrays["classes"]]
        self.output_size = len(self.classes)
        mean, std = arrays["train_features"].mean(axis=0), arrays["train_features"].std(axis=0) + 1e-6
        train = windows((arrays["train_features"] - mean) / std, arrays["train_labels"], seq_len, sizes[0])
        test = windows((arrays["test_features"] - mean) / std, arrays["test_labels"], seq_len, sizes[1])
        if min(train[1].shape[1], test[1].shape[1]) == 0:
            raise ValueError(f"seq_len {seq_len} is longer than the speech data holds")
        super().__init__(*train, *test, seed=seed, batch_size=batch_size)
        self.prior = prior_logits(self.train_y, self.output_size)

    def attrs(self) -> dict:
        return {"speech_source": self.source, "phoneme_classes": self.classes}

    def per_sample_loss(self, outputs, targets):
        return cross_entropy(outputs, targets)

    def per_sample_metric(self, outputs, targets):
        return (outputs.argmax(dim=-1) != targets.unsqueeze(1)).double().mean(dim=0)

    def baseline_outputs(self, x):
        return self.prior.to(x.dtype).expand(x.shape[0], 1, x.shape[1], self.output_size)

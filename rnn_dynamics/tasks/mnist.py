"""Pixel-by-pixel MNIST (Le, Jaitly & Hinton 2015, section 4.2): the 784 grey levels of a digit,
one per time step, in raster order, and the digit read out after the last one."""

from __future__ import annotations

import numpy as np
import torch

from ..data import data_root
from ..data.mnist import load_mnist
from .base import Preset, Task, cross_entropy, prior_logits, register_task

PIXELS = 28 * 28

#: Settings of the quick preset: CPU-sized, about ten minutes for --models paper on 2 cores.
QUICK = {"hidden": 100, "batch_size": 16, "optimizer": "adam", "lr": 3e-4, "clip": 1.0, "steps": 2000,
         "probe_every": 250}
#: The paper's settings, with where each comes from.
PAPER = Preset(
    (None, None),
    {"hidden": 100, "batch_size": 16, "optimizer": "sgd", "lr": 1e-8, "clip": 1.0, "steps": 1_000_000},
    sources={"hidden": "Le et al. 2015, section 4.2: 100 hidden units (unconfirmed)",
             "batch_size": "16 (unconfirmed)", "optimizer": "SGD (unconfirmed)",
             "lr": "1e-8 for the IRNN (unconfirmed; the paper grid-searched it per model)",
             "clip": "1 (unconfirmed)", "steps": "about 1,000,000 updates (unconfirmed)"},
    description="the whole data set, 100 units, SGD; learning rate, clipping and steps unconfirmed")


@register_task("mnist")
class MNISTTask(Task):
    """Pixel-by-pixel MNIST: 784 steps of one grey level in [0, 1], the digit read at the last step."""

    default_seq_len = PIXELS
    presets = {
        "tiny": Preset((512, 256), description="for tests"),
        "default": Preset((None, None), description="the whole data set, the study's own settings"),
        "quick": Preset((None, None), QUICK, description="the whole data set (8,000 / 2,000 digits of "
                                                          "../shared/data/mnist-10k), 2,000 Adam updates at lr 3e-4"),
        "paper": PAPER,
    }
    input_size = 1
    output_size = 10
    readout = "last"
    metric_name = "accuracy"
    metric_long_name = "test accuracy"
    metric_units = "1"
    metric_higher_is_better = True
    baseline = "predict the training set's class frequencies (accuracy: the test share of the most frequent class)"

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None):
        if seq_len != PIXELS:
            raise ValueError(f"pixel-by-pixel MNIST has {PIXELS} steps; got seq_len {seq_len}")
        self.seq_len = seq_len
        arrays = load_mnist(data_root(data_dir))
        order = self.pixel_order()
        splits = []
        for split, size in zip(("train", "test"), sizes):
            images, labels = arrays[f"{split}_images"][:size], arrays[f"{split}_labels"][:size]
            pixels = torch.from_numpy(images.reshape(len(images), PIXELS)[:, order].astype(np.float32) / 255.0)
            splits += [pixels.T.unsqueeze(-1).contiguous(), torch.from_numpy(labels.astype(np.int64))]
        super().__init__(*splits, seed=seed, batch_size=batch_size)
        self.prior = prior_logits(self.train_y, self.output_size)

    def pixel_order(self) -> np.ndarray:
        """The order the pixels are presented in: raster order."""
        return np.arange(PIXELS)

    def per_sample_loss(self, outputs, targets):
        return cross_entropy(outputs, targets)

    def per_sample_metric(self, outputs, targets):
        return (outputs.argmax(dim=-1) == targets).double()

    def baseline_outputs(self, x):
        return self.prior.to(x.dtype).expand(1, x.shape[1], self.output_size)

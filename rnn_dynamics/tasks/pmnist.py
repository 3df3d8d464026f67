"""Permuted pixel-by-pixel MNIST (Le, Jaitly & Hinton 2015, section 4.2): as mnist, with one fixed
random permutation of the 784 pixels, which spreads each digit's structure over the whole sequence."""

from __future__ import annotations

import numpy as np
import torch

from ..registry import Option
from ..seeding import generator_for
from .base import register_task
from .mnist import PIXELS, MNISTTask


@register_task("pmnist")
class PermutedMNISTTask(MNISTTask):
    """Permuted pixel-by-pixel MNIST: one fixed permutation of the pixels, seeded by --permutation-seed."""

    options = {"permutation_seed": Option(0, "seed of the fixed pixel permutation of pmnist", int)}

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None, permutation_seed: int = 0):
        self.permutation_seed = permutation_seed
        super().__init__(seq_len, seed, batch_size, sizes, data_dir)

    def pixel_order(self) -> np.ndarray:
        """A permutation drawn from a generator seeded by ``permutation_seed`` alone (the same for every study seed)."""
        return torch.randperm(PIXELS, generator=generator_for("pmnist", self.permutation_seed)).numpy()

    def attrs(self) -> dict:
        return {"permutation_seed": self.permutation_seed, "permutation": self.pixel_order().tolist()}

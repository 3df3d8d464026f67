"""Closed-form references: what tests, figures and users compare measurements against.

- Circular law (Girko; Bai 1997): the eigenvalues of an N x N matrix with iid entries of
  mean 0 and variance g^2 / N fill the disk of radius g uniformly as N grows, so
  E|lambda|^2 = g^2 / 2 and a fraction (r / g)^2 lies within radius r.
- Products of iid Gaussian matrices (Newman 1986; Cohen & Newman 1984): with entry
  variance s^2 the Lyapunov exponents are
  lambda_i = ln s + (ln 2 + digamma((N - i + 1) / 2)) / 2,  i = 1..N.
- Gains: the random-walk gains of Sussillo & Abbott (2014), the variance-preserving gains
  (He et al. 2015: sqrt 2 for ReLU), and the IRNN at initialisation, whose exponents
  are all ln s for W = s I while every state stays positive (J_t = s I then).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma

from .inits import random_walk_gain
from .nonlinearities import check_nonlinearity

__all__ = [
    "circular_law_radius", "circular_law_mean_square_modulus", "circular_law_fraction_within",
    "gaussian_product_exponents", "random_walk_gain", "variance_preserving_gain", "scaled_identity_exponents",
]


def circular_law_radius(gain: float) -> float:
    """Radius of the eigenvalue disk of an iid matrix with entry variance gain^2 / N."""
    return abs(gain)


def circular_law_mean_square_modulus(gain: float) -> float:
    """E|lambda|^2 = gain^2 / 2 for eigenvalues uniform on the disk of radius gain."""
    return gain**2 / 2.0


def circular_law_fraction_within(radius: float, gain: float) -> float:
    """Fraction of eigenvalues with |lambda| <= radius: (radius / gain)^2, capped at 1."""
    return min(1.0, (radius / gain) ** 2)


def gaussian_product_exponents(n: int, std: float) -> np.ndarray:
    """Lyapunov exponents (descending, nats per step) of products of iid N x N Gaussian matrices.

    ``std`` is the entry standard deviation s; e.g. std = 1/sqrt(N) gives
    lambda_i = (ln(2/N) + digamma((N - i + 1)/2)) / 2.
    """
    if n < 1 or not std > 0:
        raise ValueError(f"need n >= 1 and std > 0, got n={n}, std={std}")
    i = np.arange(1, n + 1)
    return math.log(std) + (math.log(2.0) + digamma((n - i + 1) / 2.0)) / 2.0


def variance_preserving_gain(nonlinearity: str) -> float:
    """Gain g for W_ij ~ N(0, g^2/N) that preserves the state variance: sqrt 2 for ReLU, 1 otherwise.

    For tanh, 1 is the linearised value and the edge of chaos of autonomous random
    tanh networks (Sompolinsky, Crisanti & Sommers 1988).
    """
    check_nonlinearity(nonlinearity)
    return math.sqrt(2.0) if nonlinearity == "relu" else 1.0


def scaled_identity_exponents(n: int, scale: float = 1.0) -> np.ndarray:
    """Exponents of the IRNN W = scale * I while every state stays positive: all ln|scale| (0 for I)."""
    return np.full(n, math.log(abs(scale)))

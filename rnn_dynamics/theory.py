"""Closed-form references: what tests, figures and users compare measurements against.

Imports numpy and scipy only (no torch), so that figures can draw these curves.

- Circular law (Girko; Bai 1997): the eigenvalues of an N x N matrix with iid entries of
  mean 0 and variance g^2 / N fill the disk of radius g uniformly as N grows, so
  E|lambda|^2 = g^2 / 2 and a fraction (r / g)^2 lies within radius r.
- Products of iid Gaussian matrices (Newman 1986; Cohen & Newman 1984): with entry
  variance s^2 the Lyapunov exponents are
  lambda_i = ln s + (ln 2 + digamma((N - i + 1) / 2)) / 2,  i = 1..N.
- Random-walk gains (Sussillo & Abbott 2014, arXiv:1412.6558): the gain g of
  W_ij ~ N(0, g^2 / N) for which ln ||delta|| of a vector backpropagated through
  delta <- W^T diag(f') delta performs an unbiased random walk. Their closed form for
  linear units and their fitted formula for ReLU units are used as published; for tanh,
  whose gain they do not derive, :func:`tanh_random_walk_gain` solves the same
  zero-drift condition numerically (see its docstring).
- The IRNN at initialisation: W = s I has all exponents ln s while every state stays
  positive (J_t = s I then).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import digamma

__all__ = [
    "circular_law_radius", "circular_law_mean_square_modulus", "circular_law_fraction_within",
    "gaussian_product_exponents", "linear_random_walk_gain", "relu_random_walk_gain", "tanh_random_walk_gain",
    "random_walk_drift", "scaled_identity_exponents",
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


def scaled_identity_exponents(n: int, scale: float = 1.0) -> np.ndarray:
    """Exponents of the IRNN W = scale * I while every state stays positive: all ln|scale| (0 for I)."""
    return np.full(n, math.log(abs(scale)))


# ---------------------------------------------------------------- random-walk gains


def linear_random_walk_gain(n: int) -> float:
    """Sussillo & Abbott's closed form for linear units: g = exp(1 / (2N))."""
    return math.exp(1.0 / (2.0 * n))


def relu_random_walk_gain(n: int) -> float:
    """Sussillo & Abbott's fitted formula for ReLU units: g = sqrt(2) exp(1.2 / (max(N, 6) - 2.4))."""
    return math.sqrt(2.0) * math.exp(1.2 / (max(n, 6) - 2.4))


#: Gauss-Hermite nodes and weights for expectations over a standard normal.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(121)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _tanh_fixed_point_variance(gain: float) -> float:
    """Mean-field stationary pre-activation variance q* = g^2 E[tanh(sqrt(q*) z)^2] (0 for g <= 1)."""
    if gain <= 1.0:
        return 0.0

    def excess(q):
        return gain**2 * np.dot(_WEIGHTS, np.tanh(math.sqrt(q) * _NODES) ** 2) / q - 1.0

    from scipy.optimize import brentq  # imported here: it alone costs every command line 0.4 s

    return brentq(excess, 1e-12, gain**2, xtol=1e-14)


def random_walk_drift(n: int, gain: float, mean_sq_derivative: float, mean_fourth_derivative: float) -> float:
    """Mean change of ln ||delta|| per layer for delta <- W^T diag(f') delta, W_ij ~ N(0, g^2 / N).

    With mu2 = E[f'^2] and mu4 = E[f'^4] over the units, the chi-square law of
    ||W^T v||^2 and the delta method for ln sum_i f'_i^2 u_i^2 (u isotropic) give
    0.5 ln(g^2 mu2) - (3 mu4 - mu2^2) / (4 N mu2^2). For linear units this is
    ln g - 1/(2N), zero at Sussillo & Abbott's exp(1/(2N)); for ReLU (mu2 = mu4 = 1/2) it is
    zero at sqrt(2) exp(1.25/N), against their fitted sqrt(2) exp(1.2/(N - 2.4)).
    """
    return 0.5 * math.log(gain**2 * mean_sq_derivative) - (
        3.0 * mean_fourth_derivative - mean_sq_derivative**2) / (4.0 * n * mean_sq_derivative**2)


def _tanh_drift(n: int, gain: float) -> float:
    q = _tanh_fixed_point_variance(gain)
    derivative = 1.0 - np.tanh(math.sqrt(q) * _NODES) ** 2
    return random_walk_drift(n, gain, float(np.dot(_WEIGHTS, derivative**2)), float(np.dot(_WEIGHTS, derivative**4)))


@lru_cache(maxsize=None)
def tanh_random_walk_gain(n: int) -> float:
    """Random-walk gain for tanh units, derived numerically: Sussillo & Abbott give none for tanh.

    Solves :func:`random_walk_drift` = 0 for g with f' = 1 - tanh(a)^2 averaged over the
    mean-field stationary pre-activations a ~ N(0, q*(g)) of a deep random tanh network
    (Gauss-Hermite quadrature, Brent's method). N = 50 gives 1.16 and N = 100 gives 1.10;
    the constant 1.15 that some implementations use for every width is the value near
    N = 55. The condition is flat near g = 1 for tanh (the mean-field growth factor is
    1 + O(q*^2)), so direct simulation of deep random tanh networks, which a test runs,
    finds |drift| below 0.005 nats per layer anywhere from g = 1.05 to 1.15 at N = 100.
    Below N of about 8 no gain up to 3 gives zero drift (the finite-width term wins) and
    this raises.
    """
    upper = next((g for g in (1.5, 2.0, 3.0) if _tanh_drift(n, g) > 0), None)
    if upper is None:
        raise ValueError(f"no tanh random-walk gain exists at N = {n}: ln ||delta|| drifts down for every gain "
                         "up to 3; give one, e.g. random_walk:gain=1.5")
    from scipy.optimize import brentq

    return brentq(lambda g: _tanh_drift(n, g), 1.0, upper, xtol=1e-12)

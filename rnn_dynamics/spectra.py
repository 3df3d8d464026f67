"""Spectra of recurrent matrices: eigenvalues, singular values, spectral radius."""

from __future__ import annotations

import numpy as np
import torch


def eigenvalues(weight: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues of (..., N, N) matrices in float64, sorted by descending modulus.

    Moduli equal to 12 significant digits (conjugate pairs) are ordered by descending
    angle, so a pair always appears as (a + ib, a - ib).
    """
    eig = torch.linalg.eigvals(weight.detach().to(torch.float64).cpu()).numpy()
    modulus = np.round(np.abs(eig), 12)
    order = np.lexsort((-np.angle(eig), -modulus), axis=-1)
    return torch.from_numpy(np.take_along_axis(eig, order, axis=-1))


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values of (..., N, N) matrices in float64, descending."""
    return torch.linalg.svdvals(weight.detach().to(torch.float64).cpu())


def spectral_radius(weight: torch.Tensor) -> torch.Tensor:
    """max |eigenvalue| of (..., N, N) matrices."""
    return eigenvalues(weight).abs().amax(dim=-1)

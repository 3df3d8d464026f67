"""Eigenvalues, singular values and spectral radius of every recurrent block."""

from __future__ import annotations

from ..records import Variable
from ..spectra import eigenvalues, singular_values
from .base import Probe, ProbeContext, register_probe


@register_probe
class WeightSpectra(Probe):
    name = "weight_spectra"
    variables = {
        "eig_real": Variable(("layer", "gate", "step", "eig"), "real part of the eigenvalues of the recurrent block",
                             "1", "eigenvalues of W_hh (of each gate's N x N block for gated cells), by descending "
                             "modulus, conjugate pairs as a + ib, a - ib"),
        "eig_imag": Variable(("layer", "gate", "step", "eig"),
                             "imaginary part of the eigenvalues of the recurrent block", "1"),
        "spectral_radius": Variable(("layer", "gate", "step"), "spectral radius of the recurrent block", "1",
                                    "max |eigenvalue|"),
        "singular_values": Variable(("layer", "gate", "step", "sv"), "singular values of the recurrent block", "1",
                                    "descending; NaN beyond N where sv is longer (state Jacobians of gated cells)"),
    }

    def record(self, ctx: ProbeContext):
        blocks = ctx.model.recurrent_blocks()  # (M, L, G, N, N)
        eig = eigenvalues(blocks)
        return {"eig_real": eig.real, "eig_imag": eig.imag, "spectral_radius": eig.abs().amax(dim=-1),
                "singular_values": singular_values(blocks)}

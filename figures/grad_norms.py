"""The gradient norm ||dL/ds_t|| reaching each time step, at a few probe steps, one panel per model.

    python -m figures.grad_norms results/spectra.nc --out results/figures

log10 of the norm from the stored logarithm (grad_log_norm), so gradients far below the float range
are drawn; earlier probe steps in lighter shades. A straight line falling to the left is a gradient
vanishing exponentially with distance from the loss.
"""

from __future__ import annotations

import math

from .common import main_for
from .spectral import profile_figure, spectral_spec


def draw(ds, args):
    return profile_figure(ds, args, "Gradient norm reaching each time step",
                          lambda cell, steps: cell["grad_log_norm"].sel(step=steps).transpose("step", "time")
                          / math.log(10), "log10 ||dL/ds_t||")


FIGURE = spectral_spec("grad_norms", ("grad_log_norm",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

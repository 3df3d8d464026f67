"""How ||ds_T/ds_{T-k}|| falls or grows with lag k, at a few probe steps, one panel per model.

    python -m figures.jacobian_decay results/spectra.nc --out results/figures

log10 of the norm (from the stored logarithm, jacobian_log_norm: ln of the mean over probe sequences) against
k on a linear axis, so a gradient that vanishes or explodes exponentially is a straight line and its slope
the decades lost or gained per step; the dashed line at 0 is a norm of 1, neither. The shaded band is one
standard deviation of ln ||ds_T/ds_{T-k}|| across the probe sequences (jacobian_log_norm_std), about the
line: how much the norm varies with the input the network reads. Earlier probe steps in lighter shades.
"""

from __future__ import annotations

import math

from .common import main_for
from .spectral import profile_figure, spectral_spec


def _in_decades(variable: str):
    return lambda cell, steps: cell[variable].sel(step=steps).transpose("step", "lag") / math.log(10)


def draw(ds, args):
    fig = profile_figure(ds, args, "Jacobian-product norm against lag", _in_decades("jacobian_log_norm"),
                         "log10 ||ds_T/ds_{T-k}||", along="lag", xlabel="lag k (time steps)",
                         spread=_in_decades("jacobian_log_norm_std"))
    for ax in fig.axes:
        ax.axhline(0, color="0.5", ls="--", lw=0.8, zorder=0)
    return fig


FIGURE = spectral_spec("jacobian_decay", ("jacobian_log_norm", "jacobian_log_norm_std"), draw,
                       __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

"""How far each model's recurrent matrix has moved from its initial value, against training step.

    python -m figures.weight_drift results/spectra.nc --out results/figures [--gate forget]

||W - W_0||_F / ||W_0||_F (log scale), one line per model in its colour (one panel per cell type when the
palette's colours would repeat): whether a network learns near its initialisation (an IRNN that keeps its
identity) or leaves it behind. Gated cells: the candidate block unless --gate.
"""

from __future__ import annotations

import numpy as np

from .common import gate_of, main_for, per_step_figure
from .spectral import spectral_spec


def draw(ds, args):
    steps = ds["step"].values

    def drift(cell):  # 0 at step 0: off a log axis
        return np.where(steps > 0, gate_of(cell, args.gate, "weight_drift")["weight_drift"].values, np.nan)

    fig, ax, lines = per_step_figure(ds, args, "Distance of the recurrent matrix from its initial value",
                                     "||W - W_0||_F / ||W_0||_F", drift)
    if any((line.get_ydata() > 0).any() for line in lines):  # else nothing moved, or all diverged before a probe
        ax.set_yscale("log")
    return fig


FIGURE = spectral_spec("weight_drift", ("weight_drift",), draw, __doc__.splitlines()[0], over_steps=True)
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

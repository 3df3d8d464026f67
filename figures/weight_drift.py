"""How far each model's recurrent matrix has moved from its initial value, against training step.

    python -m figures.weight_drift results/spectra.nc --out results/figures [--gate forget]

||W - W_0||_F / ||W_0||_F (log scale), one line per model in its colour (one panel per cell type when the
palette's colours would repeat): whether a network learns near its initialisation (an IRNN that keeps its
identity) or leaves it behind. Gated cells: the candidate block unless --gate.
"""

from __future__ import annotations

import numpy as np

from .common import choose, gate_of, legend_below, line_style, main_for, model_panels, title_of
from .spectral import spectral_spec


def draw(ds, args):
    chosen, words = choose(ds, args)
    fig, groups = model_panels(chosen, width=5.2, height=3.6, ylabel="||W - W_0||_F / ||W_0||_F")
    steps = chosen["step"].values
    handles, moved = {}, False
    for ax, models in groups:
        for point in models:
            drift = gate_of(chosen.sel(point.where), args.gate, "weight_drift")["weight_drift"].values
            drift = np.where(steps > 0, drift, np.nan)  # 0 at step 0: off a log axis
            moved |= bool((drift > 0).any())
            handles[point.label], = ax.plot(steps, drift, color=point.colour, ls=line_style(chosen, point), lw=1.5,
                                            label=point.label)
    if moved:  # else nothing moved, or every cell diverged before its first probe
        groups[0][0].set_yscale("log")  # the panels share their y axis
    legend_below(fig, handles)
    fig.suptitle(title_of(ds, "Distance of the recurrent matrix from its initial value", words), fontsize=10)
    return fig


FIGURE = spectral_spec("weight_drift", ("weight_drift",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

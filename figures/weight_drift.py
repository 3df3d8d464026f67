"""How far each model's recurrent matrix has moved from its initial value, against training step.

    python -m figures.weight_drift results/spectra.nc --out results/figures [--gate forget]

||W - W_0||_F / ||W_0||_F (log scale), one line per model in its colour: whether a network learns near its
initialisation (an IRNN that keeps its identity) or leaves it behind. Gated cells: the candidate block unless
--gate.
"""

from __future__ import annotations

import numpy as np

from .common import choose, gate_of, line_style, main_for, panels, points, title_of
from .spectral import spectral_spec


def draw(ds, args):
    chosen, words = choose(ds, args)
    fig, (ax,) = panels(1, width=5.2, height=3.6)
    steps = chosen["step"].values
    drawn = []
    for point in points(chosen):
        drift = gate_of(chosen.sel(point.where), args.gate, "weight_drift")["weight_drift"].values
        drawn.append(np.where(steps > 0, drift, np.nan))  # 0 at step 0: off a log axis
        ax.plot(steps, drawn[-1], color=point.colour, ls=line_style(chosen, point), lw=1.5, label=point.label)
    if (np.asarray(drawn) > 0).any():  # else nothing moved, or every cell diverged before its first probe
        ax.set_yscale("log")
    ax.set_xlabel("training step (updates)")
    ax.set_ylabel("||W - W_0||_F / ||W_0||_F")
    ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title_of(ds, "Distance of the recurrent matrix from its initial value", words), fontsize=10)
    return fig


FIGURE = spectral_spec("weight_drift", ("weight_drift",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

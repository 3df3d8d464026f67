"""The fraction of active (ReLU) or saturated (tanh) units against training step.

    python -m figures.activity results/spectra.nc --out results/figures [--layer 1]

One line per model in its colour (one panel per cell type when the palette's colours would repeat), from the
activity probe: for ReLU the fraction of h > 0 over the probe sequences, time and units, for tanh that of
|h| > 0.95 (gated cells: their candidate). An IRNN whose units stay active passes gradients through the
identity; ReLU units that die, or tanh units that saturate, cut them. A nonlinearity without such a notion
records NaN, drawn as nothing.
"""

from __future__ import annotations

from .common import main_for, per_step_figure
from .spectral import spectral_spec


def draw(ds, args):
    fig, ax, _ = per_step_figure(ds, args, "Active (ReLU) or saturated (tanh) units",
                                 "fraction of units", lambda cell: cell["active_fraction"].values)
    ax.set_ylim(-0.02, 1.02)
    return fig


FIGURE = spectral_spec("activity", ("active_fraction",), draw, __doc__.splitlines()[0], over_steps=True)
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

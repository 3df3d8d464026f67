"""The hidden-state norm ||h_t|| over time, at a few probe steps, one panel per model.

    python -m figures.state_norms results/spectra.nc --out results/figures

Activity that explodes or dies is the first thing to look at beside the gradients; the y axis is
logarithmic where the norms span more than two decades.
"""

from __future__ import annotations

from .common import main_for
from .spectral import profile_figure, spectral_spec


def draw(ds, args):
    return profile_figure(ds, args, "Hidden-state norm over time",
                          lambda cell, steps: cell["state_norm"].sel(step=steps).transpose("step", "time"),
                          "||h_t||", log_when_spanning=100)


FIGURE = spectral_spec("state_norms", ("state_norm",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

"""The hidden-state norm ||h_t|| over time, at a few probe steps, one panel per model.

    python -m figures.state_norms results/spectra.nc --out results/figures

Activity that explodes or dies is the first thing to look at beside the gradients; the y axis is
logarithmic where the norms span more than two decades.
"""

from __future__ import annotations

import numpy as np
import seaborn as sns

from .common import finite
from .spectral import main_for, probe_steps, spectral_figure, spectral_spec


def draw(ds, args):
    steps = probe_steps(ds)
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        values = finite(cell["state_norm"].sel(step=steps).transpose("step", "time").values)
        for shade, step, row in zip(shades, steps, values):
            ax.plot(cell["time"], row, color=shade, lw=1.3, label=f"step {step}")
        positive = values[np.isfinite(values) & (values > 0)]
        if positive.size and positive.max() / positive.min() > 100:
            ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||h_t||")

    fig = spectral_figure(ds, args, "Hidden-state norm over time", panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("state_norms", ("state_norm",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

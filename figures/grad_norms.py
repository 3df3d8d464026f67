"""The gradient norm ||dL/ds_t|| reaching each time step, at a few probe steps, one panel per model.

    python -m figures.grad_norms results/spectra.nc --out results/figures

log10 of the norm from the stored logarithm (grad_log_norm), so gradients far below the float range
are drawn; earlier probe steps in lighter shades. A straight line falling to the left is a gradient
vanishing exponentially with distance from the loss.
"""

from __future__ import annotations

import math

import seaborn as sns

from .common import finite
from .spectral import main_for, probe_steps, spectral_figure, spectral_spec


def draw(ds, args):
    steps = probe_steps(ds)
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        for shade, step in zip(shades, steps):
            values = finite(cell["grad_log_norm"].sel(step=step).values) / math.log(10)
            ax.plot(cell["time"], values, color=shade, lw=1.3, label=f"step {step}")
        ax.set_xlabel("time step t")
        ax.set_ylabel("log10 ||dL/ds_t||")

    fig = spectral_figure(ds, args, "Gradient norm reaching each time step", panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("grad_norms", ("grad_log_norm",), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

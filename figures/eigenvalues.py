"""Eigenvalue clouds of the recurrent matrix over training, one panel per model.

    python -m figures.eigenvalues results/spectra.nc --out results/figures [--gate forget] [--seed 1]

Up to four probe steps, earlier steps in lighter shades and drawn on top with larger hollow markers,
so the initial spectrum stays visible under the trained one. The unit circle is drawn, and for inits
with iid entries the circular-law disk of the initial matrix (radius g = its entry std times sqrt N,
estimated from the recorded singular values) dotted. Gated cells: the candidate block unless --gate.
"""

from __future__ import annotations

import numpy as np
import seaborn as sns

from rnn_dynamics.theory import circular_law_radius

from .common import gate_of, main_for
from .spectral import UNIT_CIRCLE, complex_plane, probe_steps, spectral_figure, spectral_spec

IID_FAMILIES = ("random_walk", "he", "gaussian", "xavier")


def iid(init: str) -> bool:
    family, _, params = init.partition(":")
    return family in IID_FAMILIES and "uniform" not in params


def draw(ds, args):
    steps = probe_steps(ds)
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        cell = gate_of(cell, args.gate)
        n = cell.sizes["eig"]
        for index, step in reversed(list(enumerate(steps))):
            real, imag = cell["eig_real"].sel(step=step).values, cell["eig_imag"].sel(step=step).values
            first = index == 0
            ax.scatter(real, imag, s=18 if first else 6, facecolors="none" if first else shades[index],
                       edgecolors=shades[index], linewidths=0.8, zorder=3 + (len(steps) - index),
                       label=f"step {step}")
        complex_plane(ax, float(np.nanmax(np.hypot(cell["eig_real"], cell["eig_imag"]))))
        if iid(point.init):
            std = np.sqrt(np.nansum(cell["singular_values"].sel(step=steps[0]).values ** 2)) / n
            radius = circular_law_radius(std * np.sqrt(n))
            ax.plot(radius * UNIT_CIRCLE.real, radius * UNIT_CIRCLE.imag, ":", color="k", lw=1)
        gate = f" ({cell['gate'].item()} block)" if "gate" in cell.coords else ""
        ax.text(0.02, 0.98, f"{point.cell}{gate}", transform=ax.transAxes, fontsize=7, va="top")

    fig = spectral_figure(ds, args, "Eigenvalues of the recurrent matrix (unit circle solid, circular law dotted)",
                          panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("eigenvalues", ("eig_real", "eig_imag", "singular_values", "spectral_radius"), draw,
                       __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

"""Singular-value spectra: of the recurrent matrix (solid) and of the whole Jacobian product ds_T/ds_0
(dashed), at the first and last probe, one panel per model.

    python -m figures.singular_values results/spectra.nc --out results/figures

log10 of the singular values against their index (descending), the product's from the stored
logarithm; gated cells: the candidate block unless --gate. The product's values further below its largest
than the dtype it was formed in is known to resolve (``RESOLVED_PRODUCT_NATS``) may be rounding: drawn faint and
dotted. A study that recorded the full_product_spectrum probe has every value exact: those are drawn instead,
and the directions the steps zeroed (-inf) are counted under the panel.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from rnn_dynamics.records import RESOLVED_PRODUCT_NATS

from .common import finite, gate_of, main_for
from .spectral import plot_resolved, product_variable, spectral_figure, spectral_spec


#: Every singular value of ds_T/ds_0, exact at any depth, where the study recorded the full_product_spectrum probe.
FULL = "jacobian_log_singular_values_full"


def draw(ds, args):
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    variable, dtype, resolved = product_variable(ds, FULL, "jacobian_log_singular_values")
    full = variable == FULL

    def panel(ax, point, cell):
        block = gate_of(cell, args.gate)
        killed = []
        for step, shade in ((first, "0.6"), (last, point.colour)):
            weights = finite(block["singular_values"].sel(step=step).values)
            ax.plot(np.arange(1, weights.size + 1), np.log10(weights), "-", color=shade, lw=1.3)
            logs = cell[variable].sel(step=step).values
            plot_resolved(ax, finite(logs) / math.log(10), resolved, shade, "--", marker=".", ms=3)
            if full and np.isneginf(logs).any():
                killed.append(f"{int(np.isneginf(logs).sum())} zeroed at step {step}")
        ax.set_xlabel("index i" + (f"   (ds_T/ds_0: {'; '.join(killed)})" if killed else ""),
                      fontsize=7 if killed else None)
        ax.set_ylabel("log10 σ_i")

    fig = spectral_figure(ds, args, f"Singular values, step {first} grey, step {last} coloured", panel)
    key = {"recurrent matrix W": Line2D([], [], color="k", ls="-"),
           "Jacobian product ds_T/ds_0": Line2D([], [], color="k", ls="--", marker=".", ms=3)}
    if not full and dtype in RESOLVED_PRODUCT_NATS:
        key[f"ds_T/ds_0 beyond {dtype}'s resolved range: may be rounding"] = Line2D([], [], color="k", ls=":",
                                                                                    alpha=0.6)
    fig.legend(list(key.values()), list(key), loc="outside lower center", ncol=len(key), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("singular_values", ("singular_values", "jacobian_log_singular_values", "spectral_radius"),
                       draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

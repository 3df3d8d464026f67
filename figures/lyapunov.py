"""Lyapunov spectra, one panel per model, and the largest exponent against training step.

    python -m analyses.spectra --lyapunov           # a dataset with the lyapunov variables
    python -m figures.lyapunov results/spectra.nc --out results/figures

lyapunov_spectra: exponent against i/S (S = state size: N, or 2N for the LSTM) at the first
(dashed) and last (solid) probe; directions killed exactly (exponent -inf) are counted in the panel
title. For Elman cells whose W has iid Gaussian entries, the exponents of products of *independent*
Gaussian matrices with the same entry variance (Newman 1986, rnn_dynamics.theory) are dotted: an RNN
reuses one W, so the gap between the two is the effect of that reuse and of f'.
Where the study recorded full_product_spectrum, the finite-time exponents (1/T) ln sigma_i of the whole product
ds_T/ds_0 at the last probe are small circles: the QR exponents (after warm-up) are their limit as T grows.
lyapunov_largest: the largest exponent (QR) against training step per model, with the direct
simulation (Benettin) as circles.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from rnn_dynamics.theory import gaussian_product_exponents

from .common import (FigureSpec, choose, finite, legend_below, line_style, main_for, mark_divergence, model_panels,
                     title_of)
from .eigenvalues import iid
from .singular_values import FULL
from .spectral import spectral_figure


def spectrum_figure(ds, args):
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])

    def panel(ax, point, cell):
        size = int(cell["lyapunov"].sel(step=first).notnull().sum())
        index = cell["exponent"].values[:size] / size
        killed = []
        for step, style in ((first, "--"), (last, "-")):
            values = cell["lyapunov"].sel(step=step).values[:size]
            ax.plot(index, finite(values), style, color=point.colour, lw=1.3)
            if np.isneginf(values).any():
                killed.append(f"{int(np.isneginf(values).sum())} at -inf at step {step}")
        if FULL in cell:  # finite-time exponents of the whole T-step product, which the QR exponents approach
            rates = cell[FULL].sel(step=last).values[:size] / int(cell["seq_len"])
            ax.plot(index, finite(rates), "o", color=point.colour, ms=2.5, mfc="none", mew=0.7)
        if iid(point.init) and point.cell == "elman":
            n = cell.sizes["eig"]
            std = np.sqrt(np.nansum(cell["singular_values"].sel(step=first).values ** 2)) / n
            ax.plot(index, gaussian_product_exponents(size, std), ":", color="k", lw=1)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlabel("i / S")
        ax.set_ylabel("λ_i (nats / step)")
        if killed:
            ax.set_xlabel("i / S   (" + "; ".join(killed) + ")", fontsize=7)

    fig = spectral_figure(ds, args, "Lyapunov spectra", panel, width=3.4)
    key = {f"step {first}": Line2D([], [], color="k", ls="--"), f"step {last}": Line2D([], [], color="k", ls="-"),
           "products of independent Gaussian matrices": Line2D([], [], color="k", ls=":")}
    if FULL in ds:
        key[f"(1/T) ln σ_i of ds_T/ds_0, step {last}"] = Line2D([], [], color="k", ls="", marker="o", ms=2.5,
                                                                 mfc="none")
    fig.legend(list(key.values()), list(key), loc="outside lower center", ncol=len(key), fontsize=8, frameon=False)
    return fig


def largest_figure(ds, args):
    chosen, words = choose(ds, args)
    fig, groups = model_panels(chosen, width=6.5, height=3.8, ylabel="largest exponent (nats / step)")
    steps = chosen["step"].values
    handles = {}
    for ax, models in groups:
        for point in models:
            cell = chosen.sel(point.where)
            values = finite(cell["lyapunov"].sel(exponent=1).values)
            line, = ax.plot(steps, values, color=point.colour, ls=line_style(chosen, point), lw=1.4)
            handles[point.label + mark_divergence(ax, cell, steps, values, point.colour)] = line
            ax.plot(steps, finite(cell["lyapunov_benettin"].values), "o", color=point.colour, ms=4, mfc="none")
        ax.axhline(0, color="0.7", lw=0.6)
    legend_below(fig, handles)
    fig.suptitle(title_of(ds, "Largest Lyapunov exponent: QR (lines), direct simulation (circles)", words),
                 fontsize=10)
    return fig


def draw(datasets, args):
    figures = {}
    for ds in datasets:
        stem = ds.attrs["source_file"]
        figures[f"{stem}-lyapunov_spectra"] = spectrum_figure(ds, args)
        if ds.sizes["step"] > 1:  # against training step: nothing to draw from one probe step
            figures[f"{stem}-lyapunov_largest"] = largest_figure(ds, args)
    return figures


FIGURE = FigureSpec("lyapunov", ("lyapunov", "lyapunov_benettin", "singular_values"), draw,
                    description=__doc__.splitlines()[0])

main = main_for(FIGURE)


if __name__ == "__main__":
    raise SystemExit(main())

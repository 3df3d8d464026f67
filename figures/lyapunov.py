"""Lyapunov spectra of every init x nonlinearity, and the largest exponent during training.

    python -m analyses.spectra --lyapunov           # a dataset with the lyapunov variables
    python -m figures.lyapunov                      # reads results/spectra.nc

Writes lyapunov_spectra.{png,pdf}: exponent against i/N at the first (dashed) and last
(solid) probe, one panel per init x nonlinearity, the number of directions killed by
inactive ReLUs (exponent -inf) noted in each panel. For inits whose W has iid Gaussian
entries, the exponents of products of *independent* Gaussian matrices with the same
entry variance (Newman 1986, rnn_dynamics.theory) are overlaid as a dotted reference:
an RNN reuses one W, so the gap between the two is the effect of that reuse and of f'.
Writes lyapunov_largest.{png,pdf}: the largest exponent (QR) against training step,
with the direct-simulation (Benettin) value as markers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from rnn_dynamics.theory import gaussian_product_exponents

from .common import figure_parser, load_slice, panel_grid, save_all

#: Init families whose recurrent matrix has iid Gaussian entries.
IID_GAUSSIAN = ("random_walk", "he", "gaussian", "xavier")


def _is_iid_gaussian(init: str) -> bool:
    name, _, params = init.partition(":")
    return name in IID_GAUSSIAN and "uniform" not in params


def spectrum_figure(ds):
    inits, nonlins = list(ds["init"].values), list(ds["nonlinearity"].values)
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    n = ds.sizes["exponent"]
    index = ds["exponent"].values / n
    fig, axes = panel_grid(ds, 2.6, 2.4, "λ_i (nats/step)", "i / N", sharex=True)
    for row, nonlin in enumerate(nonlins):
        for col, init in enumerate(inits):
            ax = axes[row, col]
            cell = ds.sel(init=init, nonlinearity=nonlin)
            notes = []
            for step, style in ((first, "--"), (last, "-")):
                values = cell["lyapunov"].sel(step=step).values
                killed = int(np.isneginf(values).sum())
                ax.plot(index, np.where(np.isfinite(values), values, np.nan), style, color="tab:blue", lw=1.2)
                if killed:
                    notes.append(f"step {step}: {killed} at -inf")
            if _is_iid_gaussian(init):
                entry_std = np.sqrt((cell["singular_values"].sel(step=first).values ** 2).sum()) / n
                ax.plot(index, gaussian_product_exponents(n, entry_std), ":", color="k", lw=1)
            ax.axhline(0, color="0.7", lw=0.6)
            if notes:
                ax.text(0.03, 0.04, "\n".join(notes), transform=ax.transAxes, fontsize=6, color="tab:red")
    fig.suptitle(f"Lyapunov spectra: dashed step {first}, solid step {last}; "
                 "dotted: iid Gaussian products, same entry variance", fontsize=10)
    return fig


def largest_figure(ds):
    inits, nonlins = list(ds["init"].values), list(ds["nonlinearity"].values)
    colors = sns.color_palette("tab10", len(inits))
    fig, axes = plt.subplots(1, len(nonlins), figsize=(5 * len(nonlins), 3.6), squeeze=False)
    for col, nonlin in enumerate(nonlins):
        ax = axes[0, col]
        for color, init in zip(colors, inits):
            cell = ds.sel(init=init, nonlinearity=nonlin)
            ax.plot(ds["step"], cell["lyapunov"].sel(exponent=1), color=color, lw=1.2, label=init)
            ax.plot(ds["step"], cell["lyapunov_benettin"], "o", color=color, ms=3, mfc="none")
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlabel("training step")
        ax.set_title(f"{nonlin}: λ_1 by QR (lines) and direct simulation (circles)", fontsize=9)
    axes[0, 0].set_ylabel("largest exponent (nats/step)")
    axes[0, -1].legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    args = figure_parser(__doc__.splitlines()[0]).parse_args(argv)
    ds = load_slice(args)
    if "lyapunov" not in ds:
        raise SystemExit(f"error: {args.data!r} has no lyapunov variables; run python -m analyses.spectra --lyapunov")
    return save_all(args.out, {"lyapunov_spectra": spectrum_figure(ds), "lyapunov_largest": largest_figure(ds)})


if __name__ == "__main__":
    raise SystemExit(main())

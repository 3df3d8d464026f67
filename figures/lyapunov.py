"""Lyapunov spectra of every init x nonlinearity, and the largest exponent during training.

    python -m analyses.spectra --lyapunov           # a dataset with the lyapunov variables
    python -m figures.lyapunov                      # reads results/spectra.nc

Writes lyapunov_spectra.{png,pdf}: exponent against i/S (S = state size: N, or 2N for the
LSTM) at the first (dashed) and last (solid) probe, one panel per nonlinearity x init of the
chosen cell type, the number of directions killed exactly (exponent -inf) noted in each
panel. For Elman inits whose W has iid Gaussian entries, the exponents of products of
*independent* Gaussian matrices with the same entry variance (Newman 1986,
rnn_dynamics.theory) are overlaid as a dotted reference: an RNN reuses one W, so the gap
between the two is the effect of that reuse and of f'. Writes lyapunov_largest.{png,pdf}:
the largest exponent (QR) against training step, with the direct-simulation (Benettin)
value as markers.
"""

from __future__ import annotations

import numpy as np

from rnn_dynamics.theory import gaussian_product_exponents

from .common import figure_parser, finite, line_panels, load_study, panel_grid, save_all, select

#: Init families whose recurrent matrix has iid Gaussian entries.
IID_GAUSSIAN = ("random_walk", "he", "gaussian", "xavier")


def _is_iid_gaussian(init: str) -> bool:
    name, _, params = init.partition(":")
    return name in IID_GAUSSIAN and "uniform" not in params


def spectrum_figure(ds):
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    fig, axes, rows, cols = panel_grid(ds, 2.6, 2.4, "λ_i (nats/step)", "i / S", sharex=True)
    for r, nonlinearity in enumerate(rows):
        for c, init in enumerate(cols):
            ax = axes[r, c]
            point = ds.sel(init=init, nonlinearity=nonlinearity)
            size = int(point["lyapunov"].sel(step=first).notnull().sum())
            index = ds["exponent"].values[:size] / size
            notes = []
            for step, style in ((first, "--"), (last, "-")):
                values = point["lyapunov"].sel(step=step).values[:size]
                ax.plot(index, finite(values), style, color="tab:blue", lw=1.2)
                killed = int(np.isneginf(values).sum())
                if killed:
                    notes.append(f"step {step}: {killed} at -inf")
            if _is_iid_gaussian(init) and ds["cell"].item() == "elman":
                n = ds.sizes["eig"]
                entry_std = np.sqrt(np.nansum(point["singular_values"].sel(step=first).values ** 2)) / n
                ax.plot(index, gaussian_product_exponents(size, entry_std), ":", color="k", lw=1)
            ax.axhline(0, color="0.7", lw=0.6)
            if notes:
                ax.text(0.03, 0.04, "\n".join(notes), transform=ax.transAxes, fontsize=6, color="tab:red")
    fig.suptitle(f"Lyapunov spectra ({ds['cell'].item()}): dashed step {first}, solid step {last}; "
                 "dotted: iid Gaussian products, same entry variance", fontsize=10)
    return fig


def largest_figure(ds):
    fig, axes, panels = line_panels(ds, 3.6)
    for ax, nonlinearity, lines in panels:
        for init, colour, label in lines:
            point = ds.sel(init=init, nonlinearity=nonlinearity)
            ax.plot(ds["step"], finite(point["lyapunov"].sel(exponent=1)), color=colour, lw=1.2, label=label)
            ax.plot(ds["step"], finite(point["lyapunov_benettin"]), "o", color=colour, ms=3, mfc="none")
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlabel("training step (updates)")
        ax.set_title(f"{ds['cell'].item()}, {nonlinearity}: λ_1 by QR (lines), direct simulation (circles)",
                     fontsize=9)
    axes[0, 0].set_ylabel("largest exponent (nats/step)")
    axes[0, -1].legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    args = figure_parser("lyapunov", __doc__.splitlines()[0]).parse_args(argv)
    ds = select(load_study(args.data, needs=("lyapunov", "lyapunov_benettin")), args)
    return save_all(args.out, {"lyapunov_spectra": spectrum_figure(ds), "lyapunov_largest": largest_figure(ds)})


if __name__ == "__main__":
    raise SystemExit(main())

"""Eigenvalues of W_hh in the complex plane and ||dh_T/dh_{T-k}|| against lag, first vs last probe.

    python -m figures.spectra                       # reads results/spectra.nc
    python -m figures.spectra --data study.nc --out figs --seed 1

Writes eigenvalues.{png,pdf} (one panel per init x nonlinearity, unit circle drawn) and
jacobian_norms.{png,pdf} (one panel per nonlinearity, one colour per init, dashed =
first probe, solid = last probe).
"""

from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns

from .common import figure_parser, load_slice, panel_grid, save_all


def eigenvalue_figure(ds):
    inits, nonlins = list(ds["init"].values), list(ds["nonlinearity"].values)
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    fig, axes = panel_grid(ds, 2.4, 2.5, "Im λ", "Re λ", sharex=True, sharey=True)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    limit = 1.1 * max(1.0, float(np.nanmax(np.hypot(ds["eig_real"], ds["eig_imag"]))))
    for row, nonlin in enumerate(nonlins):
        for col, init in enumerate(inits):
            ax = axes[row, col]
            cell = ds.sel(init=init, nonlinearity=nonlin)
            ax.plot(circle.real, circle.imag, color="0.6", lw=0.8)
            for step, color, label in ((first, "tab:blue", f"step {first}"), (last, "tab:red", f"step {last}")):
                ax.scatter(cell["eig_real"].sel(step=step), cell["eig_imag"].sel(step=step), s=5, color=color,
                           alpha=0.7, label=label, linewidths=0)
            ax.set_aspect("equal")
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
    axes[0, 0].legend(fontsize=7, loc="lower left", markerscale=2)
    fig.suptitle("Eigenvalues of W_hh, first and last probe")
    return fig


def jacobian_norm_figure(ds):
    inits, nonlins = list(ds["init"].values), list(ds["nonlinearity"].values)
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    colors = sns.color_palette("tab10", len(inits))
    fig, axes = plt.subplots(1, len(nonlins), figsize=(5 * len(nonlins), 3.8), squeeze=False)
    for col, nonlin in enumerate(nonlins):
        ax = axes[0, col]
        for color, init in zip(colors, inits):
            cell = ds["jacobian_norm"].sel(init=init, nonlinearity=nonlin)
            for step, style in ((first, "--"), (last, "-")):
                values = cell.sel(step=step)
                keep = np.isfinite(values) & (values > 0)
                ax.plot(ds["lag"][keep], values[keep], style, color=color, lw=1.2,
                        label=init if step == last else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("lag k (time steps)")
        ax.set_title(f"{nonlin}: dashed step {first}, solid step {last}", fontsize=9)
    axes[0, 0].set_ylabel("||dh_T / dh_{T-k}||₂")
    axes[0, -1].legend(fontsize=7, loc="best")
    return fig


def main(argv=None) -> int:
    args = figure_parser(__doc__.splitlines()[0]).parse_args(argv)
    ds = load_slice(args)
    return save_all(args.out, {"eigenvalues": eigenvalue_figure(ds), "jacobian_norms": jacobian_norm_figure(ds)})


if __name__ == "__main__":
    raise SystemExit(main())

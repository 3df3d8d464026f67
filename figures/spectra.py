"""Eigenvalues of the recurrent matrix in the complex plane and ||ds_T/ds_{T-k}|| against lag.

    python -m figures.spectra                       # reads results/spectra.nc
    python -m figures.spectra --data study.nc --out figs --cell lstm --gate forget --seed 1

Writes eigenvalues.{png,pdf} (one panel per nonlinearity x init of the chosen cell type,
the chosen recurrent block, unit circle drawn, first and last probe) and
jacobian_norms.{png,pdf} (one panel per nonlinearity, one colour per init, log10 of the
norm from the stored logarithm, so norms far below 1e-308 are drawn too; dashed = first
probe, solid = last probe).
"""

from __future__ import annotations

import math

import numpy as np

from .common import figure_parser, finite, line_panels, load_study, panel_grid, save_all, select


def eigenvalue_figure(ds):
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    fig, axes, rows, cols = panel_grid(ds, 2.4, 2.5, "Im λ", "Re λ", sharex=True, sharey=True)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    limit = 1.1 * max(1.0, float(np.nanmax(np.hypot(ds["eig_real"], ds["eig_imag"]))))
    for r, nonlinearity in enumerate(rows):
        for c, init in enumerate(cols):
            ax = axes[r, c]
            point = ds.sel(init=init, nonlinearity=nonlinearity)
            ax.plot(circle.real, circle.imag, color="0.6", lw=0.8)
            for step, color in ((first, "tab:blue"), (last, "tab:red")):
                ax.scatter(point["eig_real"].sel(step=step), point["eig_imag"].sel(step=step), s=5, color=color,
                           alpha=0.7, label=f"step {step}", linewidths=0)
            ax.set_aspect("equal")
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
    axes[0, 0].legend(fontsize=7, loc="lower left", markerscale=2)
    gate = f", {ds['gate'].item()} block" if "gate" in ds.coords else ""
    fig.suptitle(f"Eigenvalues of the recurrent matrix ({ds['cell'].item()}{gate}), first and last probe")
    return fig


def jacobian_norm_figure(ds):
    first, last = int(ds["step"].values[0]), int(ds["step"].values[-1])
    fig, axes, panels = line_panels(ds, 3.8)
    for ax, nonlinearity, lines in panels:
        for init, colour, label in lines:
            log10 = ds["jacobian_log_norm"].sel(init=init, nonlinearity=nonlinearity) / math.log(10)
            for step, style in ((first, "--"), (last, "-")):
                ax.plot(ds["lag"], finite(log10.sel(step=step)), style, color=colour, lw=1.2,
                        label=label if step == last else None)
        ax.set_xscale("log")
        ax.set_xlabel("lag k (time steps)")
        ax.set_title(f"{ds['cell'].item()}, {nonlinearity}: dashed step {first}, solid step {last}", fontsize=9)
    axes[0, 0].set_ylabel("log10 ||ds_T / ds_{T-k}||₂")
    axes[0, -1].legend(fontsize=7, loc="best")
    return fig


def main(argv=None) -> int:
    args = figure_parser("spectra", __doc__.splitlines()[0]).parse_args(argv)
    ds = select(load_study(args.data, needs=("eig_real", "eig_imag", "jacobian_log_norm")), args)
    return save_all(args.out, {"eigenvalues": eigenvalue_figure(ds), "jacobian_norms": jacobian_norm_figure(ds)})


if __name__ == "__main__":
    raise SystemExit(main())

"""Heatmaps of log10 ||ds_T/ds_{T-k}|| over lag k and training step, one panel per model.

    python -m figures.jacobian_norms results/spectra.nc --out results/figures

Drawn from the stored logarithm (jacobian_log_norm), so norms far below 1e-308 are drawn too; each
panel has its own colour range (its colour bar says it), so a vanishing product does not squeeze the
others. Exponential decay in k shows as colour falling steadily along the lag axis.
"""

from __future__ import annotations

import math

import numpy as np

from .common import finite, main_for
from .spectral import spectral_figure, spectral_spec


def draw(ds, args):
    def panel(ax, point, cell):
        log10 = finite(cell["jacobian_log_norm"].transpose("step", "lag").values) / math.log(10)
        lags, steps = cell["lag"].values, cell["step"].values
        keep = np.isfinite(log10).any(axis=0)
        if not keep.any():
            ax.text(0.5, 0.5, "no finite norm:\ndiverged, or exactly zero", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
            return
        mesh = ax.pcolormesh(lags[keep], steps, log10[:, keep], shading="nearest", cmap="magma")
        ax.figure.colorbar(mesh, ax=ax, label="log10 ||ds_T/ds_{T-k}||")
        ax.set_xscale("log")
        ax.set_xlabel("lag k (time steps)")
        ax.set_ylabel("training step (updates)")

    return spectral_figure(ds, args, "Jacobian-product norms over lag and training", panel, width=3.8)


FIGURE = spectral_spec("jacobian_norms", ("jacobian_log_norm",), draw, __doc__.splitlines()[0], over_steps=True)
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

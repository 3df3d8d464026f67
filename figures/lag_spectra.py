"""Singular values of the Jacobian products ds_T/ds_{T-k} at a few lags k (viridis, shortest to longest) at the
last probe, one panel per model: how many directions of the state reach back k steps, and how fast each fades.

    python -m figures.lag_spectra results/spectra.nc --out results/figures

Needs the lag_spectra probe (``python -m analyses.spectra --probes default lag_spectra``). log10 of the
singular values against their index; the values further below the largest at their lag than the dtype the
products were formed in resolves (``RESOLVED_PRODUCT_NATS``) may be rounding: drawn faint and dotted. A study that
recorded the full_lag_spectra probe has every value exact: those are drawn instead, and the directions the steps
zeroed (-inf) are counted under each panel, lag by lag.
"""

from __future__ import annotations

import math

import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D

from .common import choose, finite, main_for
from .spectral import plot_resolved, product_variable, spectral_figure, spectral_spec

VARIABLE = "jacobian_log_singular_values_lag"
#: Every singular value at every lag, exact at any depth, where the study recorded the full_lag_spectra probe.
FULL = "jacobian_log_singular_values_lag_full"


def spread_lags(lags: np.ndarray, count: int = 5) -> list[int]:
    """Up to ``count`` of the recorded lags, spread evenly in log k, the shortest and the longest included."""
    wanted = np.geomspace(lags[0], lags[-1], min(count, len(lags)))
    return sorted({int(lags[np.abs(np.log(lags) - np.log(k)).argmin()]) for k in wanted})


def draw(ds, args):
    last = int(ds["step"].values[-1])
    variable, dtype, resolved = product_variable(ds, FULL, VARIABLE)
    full = variable == FULL
    chosen, _ = choose(ds, args)  # the lags this slice's length holds (a study of several lengths has them all)
    at_last = chosen[variable].sel(step=last)
    held = at_last.notnull().any([dim for dim in at_last.dims if dim != "lag"])
    lags = spread_lags(chosen["lag"].values[held.values])
    shades = sns.color_palette("viridis", len(lags))

    def panel(ax, point, cell):
        values = cell[variable].sel(step=last)
        for shade, lag in zip(shades, lags):
            plot_resolved(ax, finite(values.sel(lag=lag).values) / math.log(10), resolved, shade, "-",
                          label=f"k = {lag}")
        zeroed = [int(np.isneginf(values.sel(lag=lag).values).sum()) for lag in lags] if full else []
        counts = f"   (zeroed at k = {', '.join(map(str, lags))}: {', '.join(map(str, zeroed))})"
        ax.set_xlabel("index i" + (counts if any(zeroed) else ""),
                      fontsize=7 if any(zeroed) else None)
        ax.set_ylabel("log10 σ_i(ds_T/ds_{T-k})")

    fig = spectral_figure(ds, args, f"Singular values of ds_T/ds_(T-k) at step {last}, by lag k", panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if full:
        handles.append(Line2D([], [], color="none"))
        labels.append("every value exact (full_lag_spectra); directions zeroed at each k counted below")
    else:
        handles.append(Line2D([], [], color="k", ls=":", alpha=0.6))
        labels.append(f"beyond {dtype}'s resolved range: may be rounding")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("lag_spectra", ((FULL, VARIABLE),), draw, __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

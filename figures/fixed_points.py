"""Eigenvalues of the step Jacobian at the fixed and slow points of each model, over training.

    python -m figures.fixed_points results/spectra.nc --out results/figures [--layer 1] [--seed 1]

Needs the fixed_points probe (``python -m analyses.spectra --probes default fixed_points``). One panel per model:
the eigenvalues at the end of every search, at up to four probe steps (earlier steps lighter, drawn larger and on
top), filled where the search ended on a fixed point (speed q <= 1e-20) and hollow where it ended on a slow point.
The unit circle is drawn: eigenvalues on it are directions the network holds with no input, inside it directions
it forgets. Each panel counts the fixed points among the searches at the first and the last step, and how many of
them are distinct (fixed_point_same_as).
"""

from __future__ import annotations

import numpy as np
import seaborn as sns

from .common import main_for
from .spectral import complex_plane, probe_steps, spectral_figure, spectral_spec

#: Speed q = 1/2 ||F(s) - s||^2 at or below which a search counts as ending on a fixed point (the search stops at
#: ||F(s) - s|| <= 1e-13 (1 + ||s||), q below 1e-24 for states of norm up to 10; a slow point stays far above).
FIXED_SPEED = 1e-20


def distinct_fixed_points(at) -> np.ndarray:
    """How many distinct fixed points the searches found (each counted at the first search that ended on it), per
    remaining entry of ``at`` (dims start and others)."""
    fixed = at["fixed_point_speed"] <= FIXED_SPEED
    return (fixed & (at["fixed_point_same_as"] == at["start"])).sum("start")


def _first_to_last(counts: list[str]) -> str:
    """The counts of the first and the last step drawn (one where one step is)."""
    return counts[0] if len(counts) == 1 else f"{counts[0]} → {counts[-1]}"


def draw(ds, args):
    steps = probe_steps(ds)
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        counts, distinct = [], []
        for index, step in reversed(list(enumerate(steps))):
            at = cell.sel(step=step)
            fixed = (at["fixed_point_speed"] <= FIXED_SPEED).values  # (start,)
            eig = (at["fixed_point_eig_real"] + 1j * at["fixed_point_eig_imag"]).transpose("eig", "start").values
            fixed_eig, slow_eig = (values[~np.isnan(values)] for values in (eig[:, fixed], eig[:, ~fixed]))
            size, order = (18 if index == 0 else 7), 3 + len(steps) - index  # NaN: beyond a smaller cell's state
            ax.scatter(fixed_eig.real, fixed_eig.imag, s=size, color=shades[index], linewidths=0, zorder=order,
                       label=f"step {step}")
            ax.scatter(slow_eig.real, slow_eig.imag, s=size, facecolors="none", edgecolors=shades[index],
                       linewidths=0.7, zorder=order)
            counts.insert(0, f"{int(fixed.sum())}/{fixed.size}")  # drawn from the last step: first step first
            if "fixed_point_same_as" in at:  # a dataset written before the probe grouped its searches has not
                distinct.insert(0, int(distinct_fixed_points(at)))
        moduli = np.hypot(cell["fixed_point_eig_real"], cell["fixed_point_eig_imag"]).values
        complex_plane(ax, float(np.nanmax(moduli, initial=0.0)))
        text = f"fixed points: {_first_to_last(counts)}"
        if distinct:
            text += f"\ndistinct: {_first_to_last(list(map(str, distinct)))}"
        ax.text(0.02, 0.98, text, transform=ax.transAxes, fontsize=7, va="top")

    held = ds["fixed_point_speed"].attrs.get("input_held", "zero")
    fig = spectral_figure(ds, args, "Eigenvalues of ds_t/ds_{t-1} at the fixed (filled) and slow (hollow) points, "
                          f"input held at {held}", panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("fixed_points", ("fixed_point_eig_real", "fixed_point_eig_imag", "fixed_point_speed"), draw,
                       __doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

"""What training changed in the recurrent matrix: the singular values of W - W_0 at a few probe steps, one
panel per model.

    python -m figures.weight_updates results/spectra.nc --out results/figures [--gate forget]

log10 of the update's singular values against their index (descending), one line per step (viridis, first dark
to last light); the panel says how far the block moved (||W - W_0||_F / ||W_0||_F) and the update's stable rank
(||W - W_0||_F^2 / ||W - W_0||_2^2, about the number of directions it used) at the last step. A few values
standing far above the rest: a low-rank update. Values below N eps sigma_1 (eps of float64) are zero to rounding
and not drawn: a ReLU unit that never fired is not updated at all. Gated cells: the candidate block unless --gate.
"""

from __future__ import annotations

import numpy as np
import seaborn as sns

from .common import finite, gate_of, main_for
from .spectral import probe_steps, spectral_figure, spectral_spec


def rounding_floor(values: np.ndarray) -> float:
    """N eps sigma_1 of N singular values computed in float64: below it a value is zero to rounding (the update
    of a unit that never fired is exactly 0)."""
    return values.size * np.finfo(np.float64).eps * values.max(initial=0.0)


def stable_rank(values: np.ndarray) -> float:
    """||A||_F^2 / ||A||_2^2 from A's singular values (NaN for A = 0)."""
    values = values[np.isfinite(values)]
    return float((values ** 2).sum() / values.max() ** 2) if values.size and values.max() > 0 else np.nan


def draw(ds, args):
    steps = [step for step in probe_steps(ds, 5) if step > 0][-4:] or [int(ds["step"].values[-1])]
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        block = gate_of(cell, args.gate, "weight_drift")
        for shade, step in zip(shades, steps):
            values = finite(block["update_singular_values"].sel(step=step).values)
            values = values[np.isfinite(values)]  # NaN beyond N
            shown = np.where(values > rounding_floor(values), values, np.nan)
            ax.plot(np.arange(1, values.size + 1), np.log10(shown), "-", color=shade, lw=1.3, label=f"step {step}")
        last = finite(block["update_singular_values"].sel(step=steps[-1]).values)
        drift = float(block["weight_drift"].sel(step=steps[-1]))
        ax.text(0.97, 0.97, f"moved {drift:.3g} of ||W_0||\nstable rank {stable_rank(last):.1f}",
                transform=ax.transAxes, fontsize=7, ha="right", va="top")
        ax.set_xlabel("index i")
        ax.set_ylabel("log10 σ_i(W - W_0)")

    fig = spectral_figure(ds, args, "Singular values of the update W - W_0 of the recurrent matrix", panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


FIGURE = spectral_spec("weight_updates", ("update_singular_values", "weight_drift"), draw, __doc__.splitlines()[0],
                       over_steps=True)
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

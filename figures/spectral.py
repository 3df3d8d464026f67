"""What the spectral figures share: one panel per model of one dataset slice, titled with the slice."""

from __future__ import annotations

import json
import math

import numpy as np
import seaborn as sns
import xarray as xr

from rnn_dynamics.records import RESOLVED_PRODUCT_NATS

from .common import FigureSpec, choose, finite, panels, points, title_of


def spectral_figure(ds: xr.Dataset, args, what: str, draw_panel, width=3.2, height=2.9, **kwargs):
    """``draw_panel(ax, point, slice)`` for every model of the chosen slice of ``ds``."""
    chosen, words = choose(ds, args)
    models = points(chosen)
    fig, axes = panels(len(models), width, height, **kwargs)
    for ax, point in zip(axes, models):
        draw_panel(ax, point, chosen.sel(point.where))
        ax.set_title(point.label, fontsize=9, color=point.colour)
    fig.suptitle(title_of(ds, what, words), fontsize=10)
    return fig


#: The unit circle of the complex plane, drawn under every eigenvalue cloud.
UNIT_CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 400))


def complex_plane(ax, largest_modulus: float) -> None:
    """The axes of an eigenvalue cloud: the unit circle, equal scales reaching 15% beyond it or beyond the largest
    modulus drawn, Re λ and Im λ labelled."""
    ax.plot(UNIT_CIRCLE.real, UNIT_CIRCLE.imag, color="0.5", lw=0.8)
    limit = 1.15 * max(1.0, largest_modulus)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")


def product_dtype(ds: xr.Dataset, variable: str) -> str | None:
    """The dtype the Jacobian products of ``variable`` were formed in: its attr, or for datasets written before it
    had one the training dtype (then the products')."""
    return ds[variable].attrs.get("product_dtype") or json.loads(ds.attrs.get("config", "{}")).get("dtype")


def resolved_decades(dtype: str | None) -> float:
    """How far below its largest a product's singular values are exact, in decades (``RESOLVED_PRODUCT_NATS`` of
    the dtype it was formed in; unbounded for one not listed)."""
    return RESOLVED_PRODUCT_NATS.get(dtype, math.inf) / math.log(10)


def product_variable(ds: xr.Dataset, full: str, formed: str) -> tuple[str, str | None, float]:
    """The product variable to draw, the dtype it was formed in and how many decades below its largest are exact:
    ``full`` (the QR-carried values, every one exact) where the study recorded it, else ``formed``."""
    if full in ds:
        return full, None, math.inf
    dtype = product_dtype(ds, formed)
    return formed, dtype, resolved_decades(dtype)


def plot_resolved(ax, log10_values, resolved: float, colour, style: str, **line) -> None:
    """Singular values (log10, descending) against their index: those within ``resolved`` decades of the largest
    in ``style``, the rest (possibly rounding) faint and dotted."""
    index = np.arange(1, log10_values.size + 1)
    exact = log10_values >= np.nanmax(log10_values, initial=-np.inf) - resolved
    ax.plot(index, np.where(exact, log10_values, np.nan), style, color=colour, lw=1.3, **line)
    ax.plot(index, np.where(exact, np.nan, log10_values), ":", color=colour, lw=0.9, alpha=0.6)


def probe_steps(ds: xr.Dataset, count: int = 4) -> list[int]:
    """Up to ``count`` probe steps spread over training, first and last included."""
    steps = ds["step"].values
    picks = sorted({int(steps[round(i)]) for i in np.linspace(0, len(steps) - 1, min(count, len(steps)))})
    return picks


def profile_figure(ds: xr.Dataset, args, what: str, profile, ylabel: str, log_when_spanning: float | None = None,
                   along: str = "time", xlabel: str = "time step t", spread=None):
    """``profile(slice, steps)`` -> (step, ``along``) values against ``along`` (time step by default), one line per
    probe step (viridis, first to last) and one panel per model; a log y axis where the values span more than
    ``log_when_spanning``. ``spread(slice, steps)``, where given, is a (step, ``along``) half-width shaded about
    each line."""
    steps = probe_steps(ds)
    shades = sns.color_palette("viridis", len(steps))

    def panel(ax, point, cell):
        values = finite(np.asarray(profile(cell, steps)))
        half_widths = finite(np.asarray(spread(cell, steps))) if spread else None
        for i, (shade, step, row) in enumerate(zip(shades, steps, values)):
            ax.plot(cell[along], row, color=shade, lw=1.3, label=f"step {step}")
            if half_widths is not None:
                ax.fill_between(cell[along], row - half_widths[i], row + half_widths[i], color=shade, alpha=0.25,
                                lw=0)
        positive = values[np.isfinite(values) & (values > 0)]
        if log_when_spanning and positive.size and positive.max() / positive.min() > log_when_spanning:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    fig = spectral_figure(ds, args, what, panel)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(steps), fontsize=8, frameon=False)
    return fig


def spectral_spec(name: str, needs: tuple, draw_one, description: str, over_steps: bool = False) -> FigureSpec:
    """The FigureSpec of a per-dataset figure drawn by ``draw_one(ds, args) -> figure``."""

    def draw(datasets, args):
        return {f"{ds.attrs['source_file']}-{name}": draw_one(ds, args) for ds in datasets}

    return FigureSpec(name, needs, draw, description=description, over_steps=over_steps)

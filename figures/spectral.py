"""What the spectral figures share: one panel per model of one dataset slice, titled with the slice."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .common import FigureSpec, choose, panels, points, run, title_of


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


def probe_steps(ds: xr.Dataset, count: int = 4) -> list[int]:
    """Up to ``count`` probe steps spread over training, first and last included."""
    steps = ds["step"].values
    picks = sorted({int(steps[round(i)]) for i in np.linspace(0, len(steps) - 1, min(count, len(steps)))})
    return picks


def spectral_spec(name: str, needs: tuple[str, ...], draw_one, description: str) -> FigureSpec:
    """The FigureSpec of a per-dataset spectral figure drawn by ``draw_one(ds, args) -> figure``."""

    def draw(datasets, args):
        return {f"{ds.attrs['source_file']}-{name}": draw_one(ds, args) for ds in datasets}

    return FigureSpec(name, needs, draw, description=description)


def main_for(spec: FigureSpec):
    def main(argv=None) -> int:
        return run(spec, argv)

    return main

"""Test metric against training step, one line per model: the shared drawing of the adding and MNIST figures.

Each line is the mean over seeds, with the range over seeds shaded when there are several (grid points of one
init family told apart by their nonlinearity's line style); a run that diverged ends in an x and says so in
the legend; the task's trivial baseline, scored on the same test sequences, is the dashed grey line.
"""

from __future__ import annotations

import numpy as np

from .common import legend_below, line_style, mark_divergence, panels, points


def learning_curves(groups: list[tuple[str, object]], ylabel: str, title: str, log_y: bool = False):
    """One panel per (title, dataset slice) in ``groups``; returns the figure."""
    fig, axes = panels(len(groups), width=4.2, height=3.3, columns=4)
    handles = {}
    for ax, (panel_title, ds) in zip(axes, groups):
        steps = ds["step"].values
        for point in points(ds):
            cell = ds.sel(point.where)
            values = cell["test_metric"]
            mean = values.mean("seed").values
            line, = ax.plot(steps, mean, color=point.colour, ls=line_style(ds, point), lw=1.6)
            if ds.sizes["seed"] > 1:
                ax.fill_between(steps, values.min("seed"), values.max("seed"), color=point.colour, alpha=0.2, lw=0)
            handles.setdefault(point.label + mark_divergence(ax, cell, steps, mean, point.colour), line)
        baseline = float(np.nanmean(ds["test_metric_baseline"].values))
        handles.setdefault("trivial baseline (same test sequences)",
                           ax.axhline(baseline, color="0.4", ls="--", lw=1.2))
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("training step (updates)")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
    legend_below(fig, handles)
    fig.suptitle(title, fontsize=11)
    return fig

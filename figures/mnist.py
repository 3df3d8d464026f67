"""The paper's sequential and permuted MNIST figure: test accuracy against training step per model.

    python -m figures.mnist results/mnist.nc results/pmnist.nc --out results/figures

One panel per dataset (pixel-by-pixel, permuted), one line per model, the mean over seeds with its
range shaded, and the accuracy of the most frequent training class (chance) dashed.
"""

from __future__ import annotations

import xarray as xr

from .common import FigureSpec, main_for
from .curves import learning_curves

TITLES = {"mnist": "pixel-by-pixel MNIST", "pmnist": "permuted pixel-by-pixel MNIST"}


def draw(datasets: list[xr.Dataset], args) -> dict:
    groups = [(TITLES[ds.attrs["task"]], ds.isel(seq_len=0)) for ds in sorted(datasets, key=lambda d: d.attrs["task"])]
    return {"mnist": learning_curves(groups, "test accuracy", "Sequential MNIST: test accuracy against training step")}


FIGURE = FigureSpec("mnist", ("test_metric", "test_metric_baseline"), draw, tasks=("mnist", "pmnist"),
                    per_dataset=False, over_steps=True, description=__doc__.splitlines()[0])

main = main_for(FIGURE)


if __name__ == "__main__":
    raise SystemExit(main())

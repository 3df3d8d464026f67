"""Studies of your own sequences (task npz): the test metric against training step, one line per model.

    python -m figures.npz results/mine.nc --out results/figures

One figure per dataset, named after it, one panel per sequence length; one line per model, the mean over seeds
with its range shaded, and the trivial predictor of the file's targets (class frequencies or the training
targets' mean) dashed. The metric is the one the targets made (accuracy, error rate over the steps or MSE).
"""

from __future__ import annotations

import xarray as xr

from .common import FigureSpec, main_for
from .curves import learning_curves


def draw(datasets: list[xr.Dataset], args) -> dict:
    figures = {}
    for ds in datasets:
        metric = ds["test_metric"].attrs.get("long_name", ds.attrs["metric"])
        groups = [(f"T = {seq_len}", ds.sel(seq_len=[seq_len]).squeeze("seq_len")) for seq_len in ds["seq_len"].values]
        figures[f"{ds.attrs['source_file']}-learning"] = learning_curves(
            groups, metric, f"{ds.attrs.get('sequences_file', 'npz study')}: {metric} against training step",
            log_y=ds.attrs["metric"] == "mse")
    return figures


FIGURE = FigureSpec("npz", ("test_metric", "test_metric_baseline"), draw, tasks=("npz",), per_dataset=False,
                    over_steps=True, description=__doc__.splitlines()[0])

main = main_for(FIGURE)


if __name__ == "__main__":
    raise SystemExit(main())

"""The paper's adding-problem figure: test MSE against training step, one panel per sequence length.

    python -m figures.adding results/adding.nc [more.nc ...] --out results/figures

One line per model (IRNN, RNN + ReLU, RNN + tanh, LSTM, or any other grid point), the mean over
seeds with its range shaded, and the always-predict-1 baseline (1/6 in expectation) dashed.
Datasets holding different lengths are combined: one panel per T found.
"""

from __future__ import annotations

import xarray as xr

from .common import FigureSpec, main_for
from .curves import learning_curves


def draw(datasets: list[xr.Dataset], args) -> dict:
    groups = []
    for ds in datasets:
        for seq_len in ds["seq_len"].values:
            groups.append((f"T = {seq_len}", ds.sel(seq_len=[seq_len]).squeeze("seq_len")))
    groups.sort(key=lambda group: int(group[0].split("= ")[1]))
    seeds = max(ds.sizes["seed"] for ds in datasets)
    fig = learning_curves(groups, "test MSE", f"Adding problem: test MSE against training step ({seeds} seed"
                                              f"{'s' if seeds > 1 else ''})", log_y=True)
    return {"adding": fig}


FIGURE = FigureSpec("adding", ("test_metric", "test_metric_baseline"), draw, tasks=("adding",), per_dataset=False,
                    over_steps=True, description=__doc__.splitlines()[0])

main = main_for(FIGURE)


if __name__ == "__main__":
    raise SystemExit(main())

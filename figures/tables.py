"""The paper's language-modelling and speech results as tables (Markdown and CSV).

    python -m figures.tables results/ptb_char.nc results/speech.nc --out results/figures

One row per model and dataset: the final test metric (perplexity, bits per character or frame
error rate; mean and range over seeds), the trivial baseline on the same test sequences, the
training steps, and whether the run diverged. Add --models irnn_scaled (the 0.01 I IRNN) to a speech
study to get the paper's speech variant.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .common import FigureSpec, Table, main_for, points

NAMES = {"perplexity": "perplexity", "bits_per_character": "bits per character",
         "frame_error_rate": "frame error rate"}


def draw(datasets: list[xr.Dataset], args) -> dict:
    rows = []
    for ds in datasets:
        final = ds.isel(step=-1, seq_len=0)
        what = f"{ds.attrs['task']}" + (f" ({ds.attrs['level']})" if "level" in ds.attrs else "")
        for point in points(ds):
            values = final["test_metric"].sel(point.where).values
            spread = f" [{np.nanmin(values):.3g}, {np.nanmax(values):.3g}]" if values.size > 1 else ""
            diverged = final["diverged_step"].sel(point.where).values
            rows.append([what, point.label, f"{np.nanmean(values):.4g}{spread}", NAMES[ds.attrs["metric"]],
                         f"{float(np.nanmean(final['test_metric_baseline'].values)):.4g}", int(final["step"]),
                         "yes" if np.isfinite(diverged).any() else "no"])
    columns = ["task", "model", "test metric (mean [range over seeds])", "metric", "trivial baseline",
               "training steps", "diverged"]
    return {"lm_speech": Table(columns, rows, "Language modelling and speech: final test metric per model")}


FIGURE = FigureSpec("tables", ("test_metric", "test_metric_baseline"), draw, tasks=("ptb", "speech"),
                    per_dataset=False, description=__doc__.splitlines()[0])

main = main_for(FIGURE)


if __name__ == "__main__":
    raise SystemExit(main())

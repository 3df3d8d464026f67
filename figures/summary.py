"""What each model learned and what its dynamics did meanwhile, one table per dataset (Markdown and CSV).

    python -m figures.summary results/spectra.nc --out results/figures

One row per model, sequence length (and layer, where there are several): the final test metric (mean and
range over seeds) beside the trivial baseline on the same test sequences, where the losses were recorded, then at
the first and the last probe step (means over seeds; the one step of networks trained elsewhere) the spectral
radius of the recurrent matrix (the candidate block of a gated cell), log10 ||ds_T/ds_{T-k}|| at the longest
recorded lag k <= T (how far back a gradient reaches), and, where the study recorded them, the largest Lyapunov
exponent, the fraction of active (ReLU) or saturated (tanh) units, the largest |eigenvalue| of the step
Jacobian at the fixed and slow points (the median over the searches) and how many distinct fixed points the
searches found.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .common import FigureSpec, Table, gate_of, main_for, points
from .fixed_points import distinct_fixed_points

#: The columns drawn where the study recorded their variable: (variable, header, how to read it from a run's slice).
OPTIONAL = (("lyapunov", "largest Lyapunov exponent (nats/step)", lambda at: at["lyapunov"].isel(exponent=0)),
            ("active_fraction", "active fraction", lambda at: at["active_fraction"]),
            ("fixed_point_eig_real", "largest |λ| at the fixed and slow points (median over searches)",
             lambda at: np.hypot(at["fixed_point_eig_real"], at["fixed_point_eig_imag"]).max("eig").median("start")),
            ("fixed_point_same_as", "distinct fixed points found", distinct_fixed_points))


def _mean(values) -> str:
    values = np.asarray(values, dtype=float)
    return "—" if np.isnan(values).all() else f"{np.nanmean(values):.3g}"


def _first_to_last(per_step: xr.DataArray) -> str:
    """'first -> last': the variable's mean over seeds at the first and at the last probe step (one where the
    dataset has one step)."""
    last = _mean(per_step.isel(step=-1).values)
    return last if per_step.sizes["step"] == 1 else f"{_mean(per_step.isel(step=0).values)} → {last}"


def _metric(final: xr.DataArray) -> str:
    values = np.asarray(final.values, dtype=float)
    spread = f" [{np.nanmin(values):.3g}, {np.nanmax(values):.3g}]" if values.size > 1 and \
        np.isfinite(values).any() else ""
    return _mean(values) + spread


def summary_table(ds: xr.Dataset) -> Table:
    steps = ds["step"].values
    optional = [(name, header, read) for name, header, read in OPTIONAL if name in ds]
    layers = ds["layer"].values  # every per-layer variable has the dim, one layer or several
    scored, trained = "test_metric" in ds, "train_loss" in ds
    columns = ["model", "T", *(["layer"] if len(layers) > 1 else []),
               *([f"test {ds.attrs.get('metric', 'metric')} (mean [range over seeds])", "trivial baseline"]
                 if scored else []),
               "spectral radius", "longest lag k", "log10 ‖ds_T/ds_{T-k}‖",
               *(header for _, header, _ in optional), *(["diverged"] if trained else [])]
    rows = []
    for point in points(ds):
        for seq_len in ds["seq_len"].values:
            run = ds.sel(point.where).sel(seq_len=seq_len)
            if trained and run["train_loss"].isnull().all():
                continue  # this model did not run at this length
            lag = max(int(k) for k in ds["lag"].values if k <= seq_len)
            for layer in layers:
                at = run.sel(layer=layer)
                rows.append([point.label, int(seq_len), *([int(layer)] if len(layers) > 1 else []),
                             *([_metric(at["test_metric"].isel(step=-1)), _mean(at["test_metric_baseline"].values)]
                               if scored else []),
                             _first_to_last(gate_of(at, None)["spectral_radius"]), lag,
                             _first_to_last(at["jacobian_log_norm"].sel(lag=lag) / math.log(10)),
                             *(_first_to_last(read(at)) for _, _, read in optional),
                             *(["yes" if np.isfinite(at["diverged_step"].values).any() else "no"] if trained else [])])
    when = f"{int(steps[0])} → {int(steps[-1])}" if len(steps) > 1 else f"{int(steps[0])}"
    caption = (f"{ds.attrs.get('task', '?')} ({ds.attrs['source_file']}): {'final test metric, and ' * scored}each "
               f"dynamical quantity at probe step {when} (means over seeds)")
    return Table(columns, rows, caption)


def draw(datasets: list[xr.Dataset], args) -> dict:
    return {f"{ds.attrs['source_file']}-summary": summary_table(ds) for ds in datasets}


FIGURE = FigureSpec("summary", ("spectral_radius", "jacobian_log_norm"),
                    draw, per_dataset=False, description=__doc__.splitlines()[0])
main = main_for(FIGURE)

if __name__ == "__main__":
    raise SystemExit(main())

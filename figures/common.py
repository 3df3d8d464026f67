"""Helpers shared by the figure scripts: loading a study, selecting one slice, saving PNG + PDF.

Figures read datasets only (never models) and import no torch. Every study dataset has
the same sweep dims (cell, init, nonlinearity, seq_len, seed), so nothing here branches on
which of them exist. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from rnn_dynamics.commandline import OneLineParser, fail  # noqa: E402
from rnn_dynamics.records import SWEEP_DIMS  # noqa: E402

DEFAULT_DATA = "results/spectra.nc"
DEFAULT_OUT = "results/figures"
STUDY_TITLE = "rnn-dynamics study"


def figure_parser(module: str, description: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m figures.{module}", description=description)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"study dataset (default {DEFAULT_DATA})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--cell", default=None, help="cell coordinate to draw (default: the first)")
    p.add_argument("--gate", default=None, help="recurrent block to draw (default: the cell's first)")
    p.add_argument("--seed", type=int, default=None, help="seed coordinate to draw (default: the first)")
    p.add_argument("--seq-len", type=int, default=None, help="seq_len coordinate to draw (default: the first)")
    p.add_argument("--layer", type=int, default=0, help="layer to draw (default 0)")
    return p


def load_study(path: str | Path, needs: tuple[str, ...] = ()) -> xr.Dataset:
    """Open a study dataset, or exit 2 with one line saying what is wrong with ``path``."""
    path = Path(path)
    if not path.is_file():
        fail(f"no dataset at {str(path)!r}; run `python -m analyses.spectra` first or pass --data")
    try:
        ds = xr.load_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as err:
        fail(f"{str(path)!r} is not a netCDF file ({str(err).splitlines()[0]})")
    if ds.attrs.get("title") != STUDY_TITLE or not set(SWEEP_DIMS) <= set(ds.dims):
        fail(f"{str(path)!r} is not an rnn-dynamics study dataset (written by python -m analyses.spectra)")
    missing = [name for name in needs if name not in ds]
    if missing:
        fail(f"{str(path)!r} has no variable {missing[0]!r}; "
             + ("it was run with --probe-every 0" if "step" not in ds.dims else "record it when running the study"))
    return ds


def select(ds: xr.Dataset, args: argparse.Namespace) -> xr.Dataset:
    """One cell type, seed, seq_len and layer (and gate, if the dataset has one); exit 2 on a bad choice."""
    selection = {}
    for dim, value in (("cell", args.cell), ("seed", args.seed), ("seq_len", args.seq_len), ("layer", args.layer)):
        valid = list(ds[dim].values)
        chosen = valid[0] if value is None else value
        if chosen not in valid:
            fail(f"{dim} {chosen} is not in the dataset; valid: {', '.join(map(str, valid))}")
        selection[dim] = chosen
    ds = ds.sel(selection)
    if "gate" in ds.dims:
        present = [g for g in ds["gate"].values
                   if "spectral_radius" not in ds or ds["spectral_radius"].sel(gate=g).notnull().any()]
        chosen = present[0] if args.gate is None else args.gate
        if chosen not in present:
            fail(f"gate {chosen} has no data for cell {selection['cell']}; valid: {', '.join(present)}")
        ds = ds.sel(gate=chosen)
    return ds


def grid_points(ds: xr.Dataset) -> tuple[list[str], list[str]]:
    """The nonlinearities (rows) and inits (columns) that hold data for the selected cell."""
    exists = ds["train_loss"].notnull().any("iteration")
    rows = [n for n in ds["nonlinearity"].values if exists.sel(nonlinearity=n).any()]
    cols = [i for i in ds["init"].values if exists.sel(init=i).any()]
    return rows, cols


def has_data(ds: xr.Dataset, init: str, nonlinearity: str) -> bool:
    return bool(ds["train_loss"].sel(init=init, nonlinearity=nonlinearity).notnull().any())


def model_name(ds: xr.Dataset, init: str, nonlinearity: str) -> str:
    """The panel title: the init, with the named model's label (IRNN, ...) when the point is one."""
    label = str(ds["model"].sel(init=init, nonlinearity=nonlinearity).values) if "model" in ds.coords else ""
    return f"{label}\n{init}" if label else init


def panel_grid(ds: xr.Dataset, panel_width: float, panel_height: float, ylabel: str, xlabel: str, **subplots):
    """One panel per nonlinearity (rows) x init (columns) with data; empty grid points are hidden."""
    rows, cols = grid_points(ds)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(panel_width * len(cols), panel_height * len(rows)),
                             squeeze=False, layout="constrained", **subplots)
    for r, nonlinearity in enumerate(rows):
        for c, init in enumerate(cols):
            axes[r, c].set_title(model_name(ds, init, nonlinearity), fontsize=8)
            axes[r, c].set_visible(has_data(ds, init, nonlinearity))
        axes[r, 0].set_ylabel(f"{nonlinearity}\n{ylabel}")
    for c in range(len(cols)):
        axes[-1, c].set_xlabel(xlabel)
    return fig, axes, rows, cols


def line_panels(ds: xr.Dataset, height: float):
    """One panel per nonlinearity with data, one colour per init (colour-blind palette):
    (fig, axes, [(ax, nonlinearity, [(init, colour, label), ...]), ...]) with only the inits that hold data."""
    rows, cols = grid_points(ds)
    colours = dict(zip(cols, sns.color_palette("colorblind", len(cols))))
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), height), squeeze=False, layout="constrained")
    panels = [(ax, nonlinearity, [(init, colours[init], model_name(ds, init, nonlinearity).replace("\n", " "))
                                  for init in cols if has_data(ds, init, nonlinearity)])
              for ax, nonlinearity in zip(axes[0], rows)]
    return fig, axes, panels


def finite(values) -> np.ndarray:
    """``values`` as floats with -inf / inf replaced by NaN (for plotting)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def save_all(out_dir: str | Path, figures: dict[str, plt.Figure]) -> int:
    """Save each figure as NAME.png and NAME.pdf in ``out_dir``, print each path; exit status 0."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        for path in (out_dir / f"{name}.png", out_dir / f"{name}.pdf"):
            fig.savefig(path, dpi=150, bbox_inches="tight")
            print(f"wrote {path}")
        plt.close(fig)
    return 0

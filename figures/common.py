"""Helpers shared by the figure scripts: loading, selecting one slice, saving PNG + PDF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

DEFAULT_DATA = "results/spectra.nc"
DEFAULT_OUT = "results/figures"


def figure_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"study dataset (default {DEFAULT_DATA})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=None, help="seed coordinate to draw (default: the first)")
    p.add_argument("--seq-len", type=int, default=None, help="seq_len coordinate when swept (default: the first)")
    p.add_argument("--layer", type=int, default=0, help="layer to draw (default 0)")
    return p


def load_slice(args: argparse.Namespace) -> xr.Dataset:
    """Open ``args.data`` and select one seed, seq_len and layer; exit 2 with one line on bad input."""
    path = Path(args.data)
    if not path.is_file():
        sys.exit(f"error: no dataset at {str(path)!r}; run `python -m analyses.spectra` first or pass --data")
    ds = xr.load_dataset(path)
    if "step" not in ds.dims:
        sys.exit(f"error: {str(path)!r} has no probes (it was run with --probe-every 0)")
    selection = {}
    for dim, value in (("seed", args.seed), ("seq_len", args.seq_len), ("layer", args.layer)):
        if dim not in ds.dims:
            continue
        valid = list(ds[dim].values)
        chosen = valid[0] if value is None else value
        if chosen not in valid:
            sys.exit(f"error: {dim} {chosen} is not in the dataset; valid: {', '.join(map(str, valid))}")
        selection[dim] = chosen
    return ds.sel(selection)


def panel_grid(ds: xr.Dataset, panel_width: float, panel_height: float, ylabel: str, xlabel: str, **subplots):
    """One panel per nonlinearity (rows) x init (columns), titled and labelled; returns (fig, axes)."""
    inits, nonlins = list(ds["init"].values), list(ds["nonlinearity"].values)
    fig, axes = plt.subplots(len(nonlins), len(inits), figsize=(panel_width * len(inits), panel_height * len(nonlins)),
                             squeeze=False, **subplots)
    for col, init in enumerate(inits):
        axes[0, col].set_title(init, fontsize=8)
        axes[-1, col].set_xlabel(xlabel)
    for row, nonlin in enumerate(nonlins):
        axes[row, 0].set_ylabel(f"{nonlin}\n{ylabel}")
    return fig, axes


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

"""The xarray schema of a study, and writing / reading it as netCDF.

A study's dataset has one dim per swept setting (``init``, ``nonlinearity``, ``seed``
always; any other setting given several values, such as ``seq_len``), then the
recording dims. :data:`SCHEMA` is the single description of every variable: the
dataset builder, the attrs and ``docs/schema.md`` all follow it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

#: The recording dims in their fixed order, with their meaning and units.
RECORD_DIMS = {
    "layer": ("layer of the stacked RNN (0 = nearest the input)", "1"),
    "step": ("optimizer updates done when the probe ran", "updates"),
    "iteration": ("optimizer update index", "updates"),
    "eig": ("eigenvalue index, by descending modulus", "1"),
    "sv": ("singular value index, descending", "1"),
    "lag": ("lag k of the Jacobian product dh_T/dh_{T-k}", "time steps"),
    "time": ("time step t of the hidden state h_t (h_0 is the initial state)", "time steps"),
    "exponent": ("Lyapunov exponent index i, 1 = largest", "1"),
}


@dataclass(frozen=True)
class Variable:
    dims: tuple[str, ...]
    long_name: str
    units: str
    description: str = ""


SCHEMA: dict[str, Variable] = {
    "loss": Variable(("step",), "training loss", "1",
                     "loss on the training batch of that step, before that step's update"),
    "train_loss": Variable(("iteration",), "training loss of every update", "1",
                           "batch loss of each update; NaN after the cell diverged"),
    "test_loss": Variable(("step",), "test loss", "1",
                          "training objective averaged over the test sequences of attr evaluated_on"),
    "test_metric": Variable(("step",), "test metric", "1",
                            "the task's metric over the test set; attr metric names it"),
    "eig_real": Variable(("layer", "step", "eig"), "real part of the eigenvalues of W_hh", "1"),
    "eig_imag": Variable(("layer", "step", "eig"), "imaginary part of the eigenvalues of W_hh", "1"),
    "spectral_radius": Variable(("layer", "step"), "spectral radius of W_hh", "1", "max |eigenvalue|"),
    "singular_values": Variable(("layer", "step", "sv"), "singular values of W_hh", "1"),
    "jacobian_norm": Variable(("layer", "step", "lag"), "||dh_T/dh_{T-k}||_2, mean over probe sequences", "1",
                              "spectral norm of the product of step Jacobians J_t = diag(f'(a_t)) W_hh "
                              "over the last k steps; NaN where k > T"),
    "jacobian_log_norm_std": Variable(("layer", "step", "lag"),
                                      "std over probe sequences of ln ||dh_T/dh_{T-k}||_2", "nats",
                                      "spread of jacobian_norm across the probe batch"),
    "jacobian_singular_values": Variable(("layer", "step", "sv"),
                                         "singular values of dh_T/dh_0, mean over probe sequences", "1"),
    "grad_norm": Variable(("layer", "step", "time"), "||dL/dh_t||, mean over probe sequences", "1",
                          "total derivative of the per-sequence loss through the recurrence; "
                          "NaN where t > T"),
    "active_fraction": Variable(("layer", "step"), "fraction of active (ReLU) or saturated (tanh) units", "1",
                                "ReLU: h > 0; tanh: |h| > 0.95; linear: NaN; over probe sequences and time"),
    "lyapunov": Variable(("layer", "step", "exponent"), "Lyapunov spectrum of the recurrence, mean over probe "
                         "sequences", "nats per time step",
                         "QR method on J_t = diag(f'(a_t)) W_hh along the input-driven probe trajectories; "
                         "-inf for directions killed by inactive ReLU units; attrs give warm-up and QR interval"),
    "lyapunov_benettin": Variable(("layer", "step"), "largest Lyapunov exponent by direct simulation, mean over "
                                  "probe sequences", "nats per time step",
                                  "Benettin: two trajectories 1e-7 apart, renormalised every step; the check on "
                                  "lyapunov[exponent=1]"),
    "diverged_step": Variable((), "step at which the cell diverged", "updates",
                              "first update whose loss, gradient or weights were NaN/Inf; NaN if none"),
}

#: Variables a probe produces (everything with a ``step`` dim).
PROBE_VARIABLES = tuple(name for name, var in SCHEMA.items() if "step" in var.dims)


@dataclass
class CellRecord:
    """Everything recorded for one cell: its coordinates and one array per variable."""

    coords: dict
    data: dict[str, np.ndarray]


def provenance(config: dict) -> dict:
    """Dataset attrs naming the code, the command, the configuration and the time."""
    import torch

    from . import __version__

    return {
        "title": "rnn-dynamics study",
        "rnn_dynamics_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "python_version": sys.version.split()[0],
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "config": json.dumps(config, sort_keys=True),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def assemble(
    cells: list[CellRecord],
    sweep: dict[str, list],
    record_coords: dict[str, np.ndarray],
    attrs: dict,
    variable_attrs: dict[str, dict] | None = None,
) -> xr.Dataset:
    """Build the study dataset from per-cell records.

    ``sweep`` maps each sweep dim to its coordinate values (in order); ``record_coords``
    gives each recording dim's coordinate. A cell's array may be shorter than the
    coordinate along ``lag`` or ``time`` (a shorter sequence): it fills the leading
    entries of ``time`` and the entries of ``lag`` named by ``cell.data['lag']``.
    """
    sweep_dims = list(sweep)
    sweep_shape = [len(v) for v in sweep.values()]
    index = {dim: {value: i for i, value in enumerate(values)} for dim, values in sweep.items()}
    present = {name for cell in cells for name in cell.data if name in SCHEMA}
    data_vars = {}
    for name, var in SCHEMA.items():
        if name not in present:
            continue
        shape = sweep_shape + [len(record_coords[d]) for d in var.dims]
        array = np.full(shape, np.nan)
        for cell in cells:
            where = tuple(index[d][cell.coords[d]] for d in sweep_dims)
            values = np.asarray(cell.data[name], dtype=np.float64)
            if not var.dims:
                array[where] = values
                continue
            target = array[where]
            if "lag" in var.dims:
                positions = np.searchsorted(record_coords["lag"], cell.data["lag"])
                target[..., positions] = values
            else:
                slices = tuple(slice(0, n) for n in values.shape)
                target[slices] = values
        attrs_for = {"long_name": var.long_name, "units": var.units}
        if var.description:
            attrs_for["description"] = var.description
        attrs_for.update((variable_attrs or {}).get(name, {}))
        data_vars[name] = (sweep_dims + list(var.dims), array, attrs_for)
    coords = {dim: (dim, np.asarray(values)) for dim, values in sweep.items()}
    for dim, values in record_coords.items():
        long_name, units = RECORD_DIMS[dim]
        coords[dim] = (dim, np.asarray(values), {"long_name": long_name, "units": units})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def mask_after_divergence(ds: xr.Dataset) -> xr.Dataset:
    """NaN every probe value at or after a cell's divergence step, and its losses after it."""
    if "diverged_step" not in ds:
        return ds
    diverged = ds["diverged_step"].fillna(np.inf)
    for name in PROBE_VARIABLES:
        if name in ds:
            ds[name] = ds[name].where(ds["step"] < diverged)
    if "train_loss" in ds:
        ds["train_loss"] = ds["train_loss"].where(ds["iteration"] <= diverged)
    return ds


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Load a study dataset fully into memory (the file is closed afterwards)."""
    return xr.load_dataset(path, engine="netcdf4")

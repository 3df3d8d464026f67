"""Trained networks rebuilt from a study dataset that recorded the ``parameters`` probe."""

from __future__ import annotations

import json

import numpy as np
import torch
import xarray as xr

from .dtypes import get_dtype
from .models import RecurrentStack, get_cell
from .plugins import load_plugins


def _only(ds: xr.Dataset, dim: str, value):
    """``value``, or the one coordinate of ``dim`` where none is given; ValueError naming the choices otherwise."""
    choices = ds[dim].values.tolist()
    if value is None:
        if len(choices) != 1:
            raise ValueError(f"the dataset has {len(choices)} values of {dim}: give {dim}= one of {choices}")
        return choices[0]
    if value not in choices:
        raise ValueError(f"{dim} {value!r} is not in the dataset; valid: {choices}")
    return value


def trained_stack(ds: xr.Dataset, *, cell: str | None = None, nonlinearity: str | None = None,
                  seq_len: int | None = None, seed: int | None = None,
                  step: int | None = None) -> tuple[RecurrentStack, list[str]]:
    """The stack of one (cell, nonlinearity, seq_len, seed) of ``ds`` as it was at probe ``step`` (default: the
    last), in the study's training dtype, and the inits of its cells in order: every init whose parameters were
    recorded there (a diverged cell's are NaN from its divergence on, so it is left out). A sweep coordinate may
    be left out where the dataset has one value. ValueError in one line where the dataset cannot give it."""
    if "parameters" not in ds:
        raise ValueError("the dataset has no variable 'parameters': record it with --probes default parameters")
    where = {dim: _only(ds, dim, value) for dim, value in
             (("cell", cell), ("nonlinearity", nonlinearity), ("seq_len", seq_len), ("seed", seed))}
    step = int(ds["step"].values[-1]) if step is None else _only(ds, "step", step)
    config = json.loads(ds.attrs["config"])
    load_plugins(config.get("plugins", []))  # a cell type of the study's own plug-ins
    cls = get_cell(where["cell"])
    options = {name: value for name, value in config["cell_options"].items() if name in cls.options}

    def stack(cells: int) -> RecurrentStack:
        return cls(cells, ds.attrs["input_size"], config["hidden"], ds.attrs["output_size"], where["nonlinearity"],
                   config["layers"], ds.attrs["readout"], **options)

    size = sum(p[0].numel() for p in stack(1).parameters())
    values = ds["parameters"].sel(**where, step=step).values[:, :size]  # (init, P)
    kept = np.isfinite(values).all(axis=1)
    if not kept.any():
        raise ValueError(f"no cell of {where} has finite parameters at step {step}")
    inits = [str(init) for init in ds["init"].values[kept]]
    model = stack(len(inits)).to(get_dtype(config["dtype"]))  # before the copy: float64 values must not pass float32
    flat = torch.from_numpy(values[kept])
    with torch.no_grad():
        offset = 0
        for parameter in model.parameters():
            count = parameter[0].numel()
            parameter.copy_(flat[:, offset:offset + count].reshape(parameter.shape))
            offset += count
    return model, inits

"""A stack's training saved part way, so that a stack that dies resumes where it was instead of at update 0.

The finished stacks of a study are kept one file each (:mod:`.checkpoints`); a stack of the paper's settings is
a million updates, a day of one run, so a crash, or a cluster job's wall-time limit, would otherwise cost all of
it. While a stack trains, the loop hands its state (:class:`~rnn_dynamics.train.TrainState`: weights, optimiser
state, divergence marks, carried stream state, losses and probe records so far) to :meth:`StackSnapshot.save`
once ``every`` seconds have passed since the last, at the start of an update. It is one netCDF file beside the
finished parts, ``<stack key>.snapshot.nc``, written atomically, each tensor as its raw bytes (exact for every
dtype) and the probe records as the variables they are. Nothing is unpickled. The same command later loads it
and trains on from there; batches are a pure function of (seed, step), so the stack comes out with the bits of an
uninterrupted run (tested). A snapshot that cannot be read is reported and its stack starts again at update 0.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

#: Bumped when the layout changes; a snapshot of another format is not resumed from.
FORMAT = 1
#: Prefix of the probe records' variables in a snapshot file (the tensors are ``tensor0``, ``tensor1``, ...).
RECORD = "probe."


@dataclass(frozen=True)
class StackSnapshot:
    """Where one stack's snapshot lives (``path``), whose it is (``key``) and how many seconds of training pass
    between two (``every`` > 0). Small and picklable: a dask worker gets it with its stack."""

    path: Path
    key: str
    every: float

    def load(self):
        """The :class:`~rnn_dynamics.train.TrainState` saved here, or None: none saved, or one that cannot be
        read (warned about: the stack then starts at update 0)."""
        from .records import read_dataset

        if not self.path.is_file():
            return None
        try:
            ds = read_dataset(self.path)
            if ds.attrs.get("format") != FORMAT or ds.attrs.get("stack") != self.key:
                raise ValueError(f"a snapshot of format {ds.attrs.get('format')} for stack {ds.attrs.get('stack')}")
            return _state_from(ds)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            warnings.warn(f"snapshot {self.path} could not be read ({err}); its stack starts again at update 0",
                          stacklevel=2)
            return None

    def save(self, state) -> bool:
        """Write ``state`` atomically over the previous snapshot; False (warned about) where it cannot be written,
        e.g. a dask worker that does not share the study's file system: training goes on without."""
        from .records import write_dataset

        try:
            write_dataset(_dataset_of(state, self.key), self.path)
        except (OSError, TypeError, ValueError) as err:
            warnings.warn(f"snapshot {self.path} could not be written ({type(err).__name__}: {err}); "
                          "the stack trains on without snapshots", stacklevel=2)
            return False
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _dataset_of(state, key: str) -> xr.Dataset:
    """``state`` as one dataset: each tensor a uint8 variable of its bytes, the losses, the records by step."""
    import torch

    data, tensors = {}, []
    for index, (name, tensor) in enumerate(state.tensors.items()):
        tensor = tensor.detach().cpu().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy()
        data[f"tensor{index}"] = xr.DataArray(raw, dims=f"tensor{index}_bytes")
        tensors.append([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)])
    data["train_loss"] = xr.DataArray(state.train_loss, dims=("update", "cell_index"))
    for name in (state.probes[0] if state.probes else {}):
        stacked = xr.concat([record[name] for record in state.probes],
                            dim=xr.DataArray(state.probe_steps, dims="step", name="step"))
        # dims and coords renamed per variable: records share dim names at other sizes (sv: 2N and N for the LSTM)
        data[RECORD + name] = stacked.rename({label: f"{RECORD}{name}.{label}" for label in _labels(stacked)})
    attrs = {"format": FORMAT, "stack": key, "step": state.step, "tensors": json.dumps(tensors),
             "values": json.dumps(state.values)}
    return xr.Dataset(data, attrs=attrs)


def _state_from(ds: xr.Dataset):
    """The :class:`~rnn_dynamics.train.TrainState` that :func:`_dataset_of` wrote."""
    import torch

    from .train import TrainState

    tensors = {}
    for index, (name, dtype, shape) in enumerate(json.loads(ds.attrs["tensors"])):
        raw = torch.from_numpy(np.array(ds[f"tensor{index}"].values, dtype=np.uint8))
        tensors[name] = raw.view(getattr(torch, dtype)).reshape(shape)
    names = [name[len(RECORD):] for name in ds.data_vars if name.startswith(RECORD)]
    steps = [int(step) for step in ds["step"].values] if names else []
    probes = [{name: _record(ds, name, i) for name in names} for i in range(len(steps))]
    return TrainState(step=int(ds.attrs["step"]), tensors=tensors, values=json.loads(ds.attrs["values"]),
                      train_loss=ds["train_loss"].values, probe_steps=steps, probes=probes)


def _labels(array: xr.DataArray) -> set[str]:
    """The dims and coords of a record but ``step``."""
    return (set(array.dims) | set(array.coords)) - {"step"}


def _record(ds: xr.Dataset, name: str, index: int) -> xr.DataArray:
    """Record ``name`` of the ``index``-th probe step, with the dims and coords it was recorded with."""
    array = ds[RECORD + name].isel(step=index).drop_vars("step")
    prefix = f"{RECORD}{name}."
    return array.rename({label: label[len(prefix):] for label in _labels(array)}).rename(name)

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
#: Prefix of the probe records' variables in a snapshot file (the tensors are the bytes of ``tensors``).
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
            with _local_locks():
                write_dataset(_dataset_of(state, self.key), self.path)
        except (OSError, TypeError, ValueError) as err:
            warnings.warn(f"snapshot {self.path} could not be written ({type(err).__name__}: {err}); "
                          "the stack trains on without snapshots", stacklevel=2)
            return False
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _local_locks():
    """Within a dask worker xarray would take a cluster-wide lock for each variable it writes (a round trip to the
    scheduler, 8x the time of a small write): a snapshot's file is this worker's alone."""
    import dask

    return dask.config.set(scheduler="synchronous")


def _dataset_of(state, key: str) -> xr.Dataset:
    """``state`` as one dataset: every tensor's bytes in one uint8 variable (their names, dtypes, shapes and sizes
    in the attrs), the losses, and each probe record by step (its coords in the attrs)."""
    import torch

    chunks, tensors = [], []
    for name, tensor in state.tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        chunks.append(tensor.reshape(-1).view(torch.uint8).numpy())
        tensors.append([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), len(chunks[-1])])
    data = {"tensors": xr.DataArray(np.concatenate(chunks), dims="tensor_bytes"),  # one variable: one HDF5 dataset
            "train_loss": xr.DataArray(state.train_loss, dims=("update", "cell_index"))}
    layouts = {}
    for name, first in (state.probes[0] if state.probes else {}).items():
        # dims renamed per variable (records share dim names at other sizes: sv is 2N and N for the LSTM); the
        # coords, the same at every step, go to the attrs: a variable each would double the file's write time
        data[RECORD + name] = xr.DataArray(np.stack([record[name].values for record in state.probes]),
                                           dims=("step", *(f"{RECORD}{name}.{dim}" for dim in first.dims)),
                                           coords={"step": state.probe_steps})
        layouts[name] = [list(first.dims), {label: [list(coord.dims), coord.dtype.str, coord.values.tolist()]
                                            for label, coord in first.coords.items()}]
    attrs = {"format": FORMAT, "stack": key, "step": state.step, "tensors": json.dumps(tensors),
             "values": json.dumps(state.values), "records": json.dumps(layouts)}
    return xr.Dataset(data, attrs=attrs)


def _state_from(ds: xr.Dataset):
    """The :class:`~rnn_dynamics.train.TrainState` that :func:`_dataset_of` wrote."""
    import torch

    from .train import TrainState

    tensors, raw, start = {}, torch.from_numpy(np.array(ds["tensors"].values, dtype=np.uint8)), 0
    for name, dtype, shape, size in json.loads(ds.attrs["tensors"]):
        tensors[name] = raw[start:start + size].clone().view(getattr(torch, dtype)).reshape(shape)
        start += size
    layouts = json.loads(ds.attrs["records"])
    steps = [int(step) for step in ds["step"].values] if layouts else []
    probes = [{name: _record(ds[RECORD + name].values[i], name, *layout) for name, layout in layouts.items()}
              for i in range(len(steps))]
    return TrainState(step=int(ds.attrs["step"]), tensors=tensors, values=json.loads(ds.attrs["values"]),
                      train_loss=ds["train_loss"].values, probe_steps=steps, probes=probes)


def _record(values: np.ndarray, name: str, dims: list[str], coords: dict) -> xr.DataArray:
    """A probe record as it was recorded: ``values`` with their dims and coords (as :func:`_dataset_of` kept them)."""
    return xr.DataArray(values, dims=dims, name=name, coords={
        label: (coord_dims, np.array(coord_values, dtype=dtype)) for label, (coord_dims, dtype, coord_values)
        in coords.items()})

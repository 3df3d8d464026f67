"""The study dataset: its dims, its variables, writing and reading it. Imports no torch.

Every study dataset has the same sweep dims, whatever was swept: ``cell``, ``init``,
``nonlinearity``, ``seq_len``, ``seed`` (length 1 where not swept), then the recording dims
its variables use. The variables are the union of what the study runner records per
cell (:data:`STACK_VARIABLES`) and what every registered probe declares
(:func:`schema`); ``docs/schema.md`` is generated from the same declarations
(``python -m rnn_dynamics.records docs/schema.md``) and a test checks it is current.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

#: The sweep dims, in their fixed order, with their meaning.
SWEEP_DIMS = {
    "cell": "cell type of the recurrent stack (elman, lstm, gru, ...)",
    "init": "recurrent init spec exactly as given, e.g. identity, scaled_identity:scale=0.5",
    "nonlinearity": "the cell's nonlinearity (for gated cells: the candidate and cell-output nonlinearity)",
    "seq_len": "sequence length T",
    "seed": "seed; data, batches and weights come from generators seeded by coordinates",
}

#: The recording dims in their fixed order, with their meaning and units (a probe may declare more:
#: :func:`record_dims`).
RECORD_DIMS = {
    "layer": ("layer of the stacked RNN (0 = nearest the input)", "1"),
    "gate": ("recurrent block of the cell: recurrent (Elman); input, forget, output, candidate (LSTM); "
             "reset, update, candidate (GRU)", "1"),
    "step": ("optimizer updates done when the probe ran", "updates"),
    "iteration": ("optimizer update index", "updates"),
    "eig": ("eigenvalue index, by descending modulus", "1"),
    "sv": ("singular value index, descending", "1"),
    "lag": ("lag k of the Jacobian product ds_T/ds_{T-k}", "time steps"),
    "time": ("time step t of the state s_t (s_0 is the zero initial state)", "time steps"),
    "exponent": ("Lyapunov exponent index i, 1 = largest", "1"),
}

DIM_ORDER = list(SWEEP_DIMS) + list(RECORD_DIMS)


@dataclass(frozen=True)
class Variable:
    """A recorded variable: its recording dims (after the sweep dims), long name, units, meaning."""

    dims: tuple[str, ...]
    long_name: str
    units: str
    description: str = ""

    def attrs(self) -> dict:
        attrs = {"long_name": self.long_name, "units": self.units}
        if self.description:
            attrs["description"] = self.description
        return attrs


#: How far below the largest of them the singular values of ds_T/ds_0 (``jacobian_log_singular_values``) are exact,
#: in nats, by the dtype the product is formed in; smaller values are its rounding (tests/test_jacobians.py holds
#: ``product_log_norms`` to these; measured 7.1-16.6 and 30.9-39.7 nats). The probe forms it in float64 and says
#: so in the variable's attrs; datasets written before that formed it in the training dtype.
RESOLVED_PRODUCT_NATS = {"float32": 6.0, "float64": 28.0}

#: Variables the study runner records once per cell (not per probe).
STACK_VARIABLES: dict[str, Variable] = {
    "train_loss": Variable(("iteration",), "training loss of every update", "1",
                           "batch loss of each update; NaN after the cell diverged"),
    "diverged_step": Variable((), "step at which the cell diverged", "updates",
                              "first update whose loss, gradient or weights were NaN/Inf; NaN if none"),
    "test_loss_baseline": Variable((), "test loss of the task's trivial predictor", "1",
                                   "the task's trivial prediction (attr baseline) scored on exactly the test "
                                   "sequences that test_loss scores"),
    "test_metric_baseline": Variable((), "test metric of the task's trivial predictor", "1",
                                     "the task's trivial prediction scored on exactly the test sequences that "
                                     "test_metric scores"),
}


def schema() -> dict[str, Variable]:
    """Every variable a study can hold: the runner's, then every registered probe's."""
    from .probes import PROBES  # the probes compute with torch; reading a dataset never needs this

    variables = dict(STACK_VARIABLES)
    for _, probe in PROBES.items():
        variables.update(probe.variables)
    return variables


def record_dims() -> dict[str, tuple[str, str]]:
    """Every recording dim with its meaning and units: :data:`RECORD_DIMS`, then those the probes declare."""
    from .probes import PROBES

    dims = dict(RECORD_DIMS)
    for _, probe in PROBES.items():
        dims.update(probe.dims)
    return dims


def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), which with torch's build and thread count decides the last
    bits of a CPU run; the machine's architecture where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: dict) -> dict:
    """Dataset attrs naming the code, the command, the configuration, the machine and the time."""
    import torch

    from . import __version__

    return {
        "title": "rnn-dynamics study",
        "rnn_dynamics_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "python_version": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "config": json.dumps(config, sort_keys=True),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def canonical_order(ds: xr.Dataset) -> xr.Dataset:
    """Every variable's dims in the fixed order: sweep dims, then recording dims."""
    for name, var in ds.data_vars.items():
        order = [d for d in DIM_ORDER if d in var.dims] + [d for d in var.dims if d not in DIM_ORDER]
        ds[name] = var.transpose(*order)
    return ds


def mask_after_divergence(ds: xr.Dataset) -> xr.Dataset:
    """NaN every probe value at or after a cell's divergence step, and its losses after it."""
    if "diverged_step" not in ds:
        return ds
    diverged = ds["diverged_step"].fillna(np.inf)
    for name, var in ds.data_vars.items():
        if "step" in var.dims:
            ds[name] = var.where(ds["step"] < diverged)
    if "train_loss" in ds:
        ds["train_loss"] = ds["train_loss"].where(ds["iteration"] <= diverged)
    return ds


def named_models(ds: xr.Dataset) -> dict[str, xr.Dataset]:
    """The named models of a study (IRNN, RNN + tanh, ...) as {label: slice}, from its ``model`` coordinate.

    The ``model`` coordinate (dims cell, init, nonlinearity) holds each named model's label
    at its grid point and "" elsewhere; each slice has the cell, init and nonlinearity
    dims selected away.
    """
    if "model" not in ds.coords:
        return {}
    labels = ds["model"]
    found = {}
    for index in zip(*np.nonzero(labels.values != "")):
        point = {dim: ds[dim].values[i] for dim, i in zip(labels.dims, index)}
        found[str(labels.values[index])] = ds.sel(point)
    return found


def summary_table(ds: xr.Dataset) -> str:
    """A Markdown table: per cell of the study, the final test loss and metric, the baseline scored on the
    same test sequences, and the step at which the cell diverged (if it did)."""
    final = ds.isel(step=-1) if "step" in ds.dims else ds
    exists = ds["train_loss"].notnull().any("iteration") | ds["diverged_step"].notnull()
    points = exists.stack(point=list(SWEEP_DIMS))
    lines = ["| cell | init | nonlinearity | seq_len | seed | test_loss | test_metric | baseline | diverged |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for point in points["point"].values[points.values]:
        where = dict(zip(SWEEP_DIMS, point))
        cells = [str(value) for value in point]
        for name in ("test_loss", "test_metric", "test_metric_baseline"):
            value = final[name].sel(where).item() if name in final else float("nan")
            cells.append("" if np.isnan(value) else f"{value:.4f}")
        diverged = ds["diverged_step"].sel(where).item()
        cells.append("" if np.isnan(diverged) else f"at step {int(diverged)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(temporary path)`` in the target's folder, then rename onto ``path``.

    Nothing half-written is ever left at ``path``; the file gets the mode any new file of
    the user gets (0666 less the umask), not the temporary file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: How numeric variables are stored: deflated after a byte shuffle (netCDF-4's zlib filter, which every netCDF-4
#: reader undoes). The NaN that pads dims a cell does not fill (gates, a longer state, unrecorded steps) and the
#: slowly varying floats shrink the quick adding study's dataset 6.7x (26.3 to 3.9 MB) and the default study's
#: 1.3x, for 0.2 s more to write.
COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}
#: Variables smaller than this stay uncompressed: the chunked storage a filter needs costs a few KB of HDF5
#: metadata per variable, more than a small one saves (a tiny study's file grew 1.8x with every variable
#: compressed, 1.13x with those of 4 KB or more, and not at all from 16 KB).
COMPRESS_FROM_BYTES = 16384


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF-4 atomically (see :func:`atomic_write`), its numeric variables of
    :data:`COMPRESS_FROM_BYTES` or more compressed (:data:`COMPRESSION`), the others plain: the encodings that
    variables read from files (a resumed study's parts) carry are not reused."""
    encoding = {name: dict(COMPRESSION) if variable.dtype.kind in "fiub" and variable.nbytes >= COMPRESS_FROM_BYTES
                else {} for name, variable in ds.data_vars.items()}
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding))


def read_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Load a study dataset fully into memory (the file is closed afterwards)."""
    return xr.load_dataset(path, engine="netcdf4")


# ---------------------------------------------------------------- the schema page


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def schema_tables() -> str:
    """The generated part of docs/schema.md: sweep dims, recording dims and every variable."""
    lines = ["| sweep dim | meaning |", "| --- | --- |"]
    lines += [f"| `{dim}` | {_cell(meaning)} |" for dim, meaning in SWEEP_DIMS.items()]
    lines += ["", "| recording dim | meaning | units |", "| --- | --- | --- |"]
    lines += [f"| `{dim}` | {_cell(meaning)} | {units} |" for dim, (meaning, units) in record_dims().items()]
    lines += ["", "| variable | dims after the sweep dims | units | long name | meaning |",
              "| --- | --- | --- | --- | --- |"]
    for name, var in schema().items():
        dims = ", ".join(var.dims) or "(none)"
        lines.append(f"| `{name}` | {dims} | {var.units} | {_cell(var.long_name)} | {_cell(var.description)} |")
    return "\n".join(lines) + "\n"


GENERATED_BEGIN = "<!-- generated by python -m rnn_dynamics.records docs/schema.md: do not edit below -->\n"
GENERATED_END = "<!-- end of generated tables -->\n"


def update_schema_page(path: str | os.PathLike) -> bool:
    """Rewrite the generated tables of the schema page at ``path``; True if it changed. ValueError in one line for
    a path that is no file, or a page without the generated tables' first marker (nothing is written to it)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file: give the schema page, docs/schema.md")
    text = path.read_text()
    if GENERATED_BEGIN not in text:
        raise ValueError(f"{str(path)!r} has no line {GENERATED_BEGIN.strip()!r} to put the tables after: give the "
                         "schema page, docs/schema.md")
    head, _, rest = text.partition(GENERATED_BEGIN)
    _, _, tail = rest.partition(GENERATED_END)
    new = head + GENERATED_BEGIN + schema_tables() + GENERATED_END + tail
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    from .commandline import fail

    if len(sys.argv) != 2:
        fail("usage: python -m rnn_dynamics.records docs/schema.md")
    try:
        print(f"{sys.argv[1]}: {'updated' if update_schema_page(sys.argv[1]) else 'already current'}")
    except ValueError as err:
        fail(str(err))

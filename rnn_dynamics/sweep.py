"""A study: a grid of configurations, grouped into stacks of cells, run, recorded and merged.

Cells that share cell type, nonlinearity, sequence length and seed (and every other
setting) form one stack: they train together in one time loop on the same batches
(fast, and a paired comparison of inits). Each stack becomes one small dataset with all
five sweep dims; the study dataset is their merge by xarray (outer join on every
coordinate), so sparse grids such as the paper's four models need no index filling.
Stacks are independent of each other and of the order they run in, since every
generator is seeded from coordinates.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from .checkpoints import StackCheckpoints
from .config import StudyConfig
from .dtypes import get_dtype
from .models import get_cell
from .paper import MODELS
from .probes import PROBES, ProbeContext, StackShape
from .records import SWEEP_DIMS, canonical_order, mask_after_divergence, provenance, record_dims, schema
from .train import train_stack


#: Attrs each stack records about how it ran (they move the last bits), with the type their values compare as.
STACK_ATTRS = {"torch_threads": int, "recurrence": str}


@dataclass(frozen=True)
class StackSpec:
    """One unit of work: the cells (inits) that share everything else."""

    cell: str
    nonlinearity: str
    seq_len: int
    seed: int
    inits: tuple[str, ...]

    def key(self) -> str:
        """A file-name-safe label of the stack's coordinates."""
        return f"{self.cell}_{self.nonlinearity}_T{self.seq_len}_seed{self.seed}"


def plan_stacks(config: StudyConfig) -> list[StackSpec]:
    """The stacks of a study, in a fixed order: one per (seed, seq_len, cell, nonlinearity)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for cell, nonlinearity, init in config.points():
        groups.setdefault((cell, nonlinearity), []).append(init)
    return [StackSpec(cell, nonlinearity, seq_len, seed, tuple(inits))
            for seed in config.seeds for seq_len in config.seq_len for (cell, nonlinearity), inits in groups.items()]


# ---------------------------------------------------------------- resources


def local_available_bytes(device: str) -> int | None:
    """Memory free for a new stack: the GPU's free memory, or MemAvailable on Linux; None if unknown."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stack_shape(config: StudyConfig, spec: StackSpec, task=None) -> StackShape:
    """The sizes of ``spec``'s stack that its memory and its records depend on (about 30 lags unless every lag is
    recorded); ``task`` is the stack's, built here where not given."""
    task = task or config.build_task(spec.seq_len, spec.seed, train_size=1, test_size=1)
    cls = get_cell(spec.cell)
    n = config.hidden
    return StackShape(len(spec.inits), config.layers, len(cls.gates), n, cls.state_size(n),
                      spec.seq_len if config.all_lags else 30,
                      cls.parameter_count(task.input_size, n, task.output_size, config.layers))


def stack_bytes(config: StudyConfig, spec: StackSpec) -> int:
    """About the most memory a stack needs: training (weights, gradients, optimizer state, the
    activations the fast path keeps) or probing (the trace, the Jacobian products), whichever is larger,
    plus the records its probes keep until it ends, twice while they are joined (:func:`records_bytes`)."""
    task = config.build_task(spec.seq_len, spec.seed, train_size=1, test_size=1)
    shape = stack_shape(config, spec, task)
    m, n, t, b = shape.cells, shape.hidden, spec.seq_len, config.batch_size
    gates, state, layers = shape.gates, shape.state, shape.layers
    itemsize = get_dtype(config.dtype).itemsize
    weights = 5 * m * shape.parameters
    readout_steps = t if task.readout == "all" else 1
    activations = 3 * layers * m * b * (t * gates * n + (t + 1) * state) + 3 * m * b * readout_steps * \
        task.output_size
    probing = config.probe_batch * m * (shape.lags * state * state + 4 * layers * t * (gates * n + state))
    spectra = 8 * m * layers * gates * n * n
    records = 2 * records_bytes(config, shape)
    return max((weights + activations) * itemsize, probing * itemsize + spectra * 8) + records


def records_bytes(config: StudyConfig, shape: StackShape) -> int:
    """What a stack of ``shape`` records over all its probe steps, as far as its probes say
    (:meth:`Probe.bytes_per_probe`: the large ones)."""
    return len(config.train.probe_steps()) * sum(PROBES.get(name).bytes_per_probe(shape)
                                                 for name in config.recorded_probes())


def _format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.1f} {unit}"
        count /= 1024


def check_resources(config: StudyConfig, available: int | None = None) -> None:
    """Refuse (ValueError) a study whose largest stack would not fit in ``available`` bytes (default:
    the memory available to this process now)."""
    available = local_available_bytes(config.device) if available is None else available
    if available is None:
        return
    spec = max(plan_stacks(config), key=lambda s: stack_bytes(config, s))
    needed = stack_bytes(config, spec)
    if needed > available:
        raise ValueError(f"a stack of {len(spec.inits)} {spec.cell} cells with hidden {config.hidden}, batch "
                         f"{config.batch_size}, seq_len {spec.seq_len} needs about {_format_bytes(needed)}; "
                         f"{_format_bytes(available)} is available on {config.device}: reduce --hidden, "
                         "--batch-size, --seq-len, --probe-batch or the inits per stack, or record less "
                         "(--probe-every, --probes)")


def check_disk(config: StudyConfig, out: Path, free: int | None = None) -> None:
    """Refuse (ValueError) a study whose records would not fit in ``free`` bytes (default: what the disk that
    will hold ``out`` has free): each stack's part, then the dataset, about twice what the probes record."""
    folder = next(parent for parent in Path(out).absolute().parents if parent.exists())
    free = shutil.disk_usage(folder).free if free is None else free
    needed = 2 * sum(records_bytes(config, stack_shape(config, spec)) for spec in plan_stacks(config))
    if needed > free:
        raise ValueError(f"the study's records need about {_format_bytes(needed)} on disk (its parts, then the "
                         f"dataset); {_format_bytes(free)} is free in {folder}: record less (--probe-every, --probes)")


# ---------------------------------------------------------------- running


def run_stack(config: StudyConfig, spec: StackSpec, on_step=None, snapshot=None) -> xr.Dataset:
    """Build, train and probe one stack; its dataset (every sweep dim, ``init`` as long as the stack). With
    ``snapshot`` (a :class:`~rnn_dynamics.snapshots.StackSnapshot`) the training resumes from it and saves to it."""
    import torch

    config.load_plugins()  # a worker process has not imported them yet
    device, dtype = torch.device(config.device), get_dtype(config.dtype)
    task = config.build_task(spec.seq_len, spec.seed).to(dtype)
    model = get_cell(spec.cell).from_inits(
        spec.inits, task.input_size, config.hidden, task.output_size, spec.nonlinearity, config.layers,
        task.readout, seed=spec.seed, input_std=config.input_std, output_std=config.output_std, bias=config.bias,
        **config.options_for(spec.cell)).to(device=device, dtype=dtype)
    settings = config.probe_settings(spec.seq_len)
    probes = [PROBES.get(name) for name in config.recorded_probes()]

    initial_blocks = model.recurrent_blocks().cpu()  # a copy: the blocks are stacked anew

    def probe(model, step):
        ctx = ProbeContext(model, task, step, settings, spec.inits, initial_blocks)
        return {name: array for p in probes for name, array in p(ctx).items()}

    result = train_stack(model, task, config.train, probe if probes else None, on_step, snapshot)
    inits = list(spec.inits)
    data = {
        "train_loss": xr.DataArray(result.train_loss.T, dims=("init", "iteration"),
                                   coords={"init": inits, "iteration": np.arange(config.train.steps)}),
        "diverged_step": xr.DataArray(result.diverged_step, dims=("init",), coords={"init": inits}),
    }
    if result.probes:
        data.update(_probe_data(config, task, inits, result.probe_steps, result.probes))
    return _at_sweep_point(data, spec, model, config.hidden)


def probe_stack(config: StudyConfig, spec: StackSpec, models: Mapping[int, object], bar=None) -> xr.Dataset:
    """Probe given stacks as they are, one per training step ({step: stack}, the stack's cells ``spec.inits``),
    with ``config``'s probes on its task at ``spec``'s seq_len and seed: the dataset :func:`run_stack` would give
    for a stack that training took through them (networks trained elsewhere, held by
    :func:`~rnn_dynamics.from_torch`; the first step's weights are the initial ones). ``bar`` (a tqdm bar) moves
    on by one per step probed. ValueError in one line where the task's input or output size, or the steps it reads
    the output at, differ from the stacks'."""
    config.load_plugins()
    steps = sorted(models)
    first = models[steps[0]]
    task = config.build_task(spec.seq_len, spec.seed).to(first.w_out.dtype)
    sizes = {"input": (task.input_size, first.w_ih[0].shape[-1]), "output": (task.output_size, first.w_out.shape[1])}
    for what, (wanted, held) in sizes.items():
        if wanted != held:
            raise ValueError(f"task {config.task!r} has {what} size {wanted} but the network's is {held}: give a task "
                             f"(the npz task for your own sequences) whose {what}s fit it")
    if first.readout != task.readout:
        raise ValueError(f"task {config.task!r} reads the network's output at {task.readout!r} steps but the stack "
                         f"reads it at {first.readout!r}: hold the network with readout={task.readout!r}")
    settings, initial_blocks = config.probe_settings(spec.seq_len), first.recurrent_blocks()
    records = []
    for step in steps:
        ctx = ProbeContext(models[step], task, step, settings, spec.inits, initial_blocks)
        records.append({name: array for probe in config.recorded_probes()
                        for name, array in PROBES.get(probe)(ctx).items()})
        if bar is not None:
            bar.update(1)
    return _at_sweep_point(_probe_data(config, task, list(spec.inits), steps, records), spec, first, config.hidden)


def probe_study(config: StudyConfig, models, progress: bool = False) -> xr.Dataset:
    """The dataset of ``config``'s probes on given stacks at each seq_len and seed of ``config``, labelled as a
    study's: ``models`` is one stack (probe step 0) or {training step: stack} of one network per cell at each step;
    ``config.cells`` and ``config.nonlinearities`` name their one cell type and nonlinearity, ``config.inits``
    their cells, ``hidden`` and ``layers`` their sizes. ``progress`` shows a bar of the probe steps (on a
    terminal, to stderr)."""
    config.validate_probing()
    models = models if isinstance(models, Mapping) else {0: models}
    if not models:
        raise ValueError("no stack given to probe")
    specs = plan_stacks(config)
    with tqdm(total=len(specs) * len(models), unit="step", desc="probe steps", file=sys.stderr,
              disable=None if progress else True) as bar:
        return build_dataset(config, [probe_stack(config, spec, models, bar) for spec in specs])


def _probe_data(config: StudyConfig, task, inits: list[str], steps, records: list[dict]) -> dict[str, xr.DataArray]:
    """The probes' records of one stack, one dict per probe step, along ``step``; with the task's trivial
    baselines where the losses were scored."""
    data = {name: xr.concat([record[name] for record in records], dim=xr.DataArray(steps, dims="step", name="step"))
            for name in records[0]}
    if "losses" in config.recorded_probes():
        loss, metric = task.baseline_scores(config.probe_test_size)
        data["test_loss_baseline"] = xr.DataArray(np.full(len(inits), loss), dims="init", coords={"init": inits})
        data["test_metric_baseline"] = xr.DataArray(np.full(len(inits), metric), dims="init", coords={"init": inits})
    return data


def _at_sweep_point(data: dict[str, xr.DataArray], spec: StackSpec, model, hidden: int) -> xr.Dataset:
    """One stack's variables at its point of every sweep dim, with what ran its recurrence."""
    import torch

    from .kernels import describe_recurrence

    ds = xr.Dataset(data).expand_dims(cell=[spec.cell], nonlinearity=[spec.nonlinearity], seq_len=[spec.seq_len],
                                      seed=[spec.seed])
    # Both move the last bits of the numbers, so each stack keeps them (run_study lists what the parts had).
    ds.attrs["torch_threads"] = torch.get_num_threads()
    ds.attrs["recurrence"] = describe_recurrence(spec.cell, model.w_out, hidden, spec.nonlinearity)
    return canonical_order(ds)


def run_study(config: StudyConfig, progress: bool = True, checkpoints: StackCheckpoints | None = None,
              report=None, executor=None) -> xr.Dataset:
    """Run every stack of ``config`` and return the study dataset.

    ``executor`` says where stacks run: :class:`~rnn_dynamics.executors.InProcess` (the
    default) or :class:`~rnn_dynamics.executors.Dask`. With ``checkpoints``, each finished
    stack is saved the moment it comes back and stacks saved by an earlier, interrupted run
    of the same configuration are loaded instead of rerun; the stacks still to run keep
    snapshots there as they train (:meth:`StackCheckpoints.snapshot`) and resume from those;
    ``report`` (e.g. ``print``) receives one line saying what was loaded. ``progress`` shows a bar of stacks (with
    ETA), and in-process a bar of steps, when writing to a terminal.
    """
    from .executors import InProcess

    executor = executor or InProcess()
    config.validate()
    check_resources(config, executor.available_bytes(config))
    stacks = plan_stacks(config)
    loaded = {spec.key(): checkpoints.load(spec.key()) for spec in stacks} if checkpoints is not None else {}
    parts = {key: ds for key, ds in loaded.items() if ds is not None}
    todo = [spec for spec in stacks if spec.key() not in parts]
    snapshots = {spec.key(): checkpoints.snapshot(spec.key()) for spec in todo} if checkpoints is not None else {}
    part_way = [key for key, snapshot in snapshots.items() if snapshot is not None and snapshot.path.is_file()]
    if (parts or part_way) and report is not None:
        report(f"resuming from {checkpoints.folder}: {len(parts)} of {len(stacks)} stacks loaded, "
               f"{len(stacks) - len(parts)} to run" + (f", {len(part_way)} of them from a snapshot part way"
                                                       if part_way else ""))
    with tqdm(total=len(stacks), initial=len(parts), unit="stack", desc="stacks", file=sys.stderr,
              disable=None if progress else True) as bar:
        for spec, finished in executor.run(config, todo, progress, snapshots):
            if checkpoints is not None:
                checkpoints.save(spec.key(), finished)
                if snapshots[spec.key()] is not None:
                    snapshots[spec.key()].remove()
            parts[spec.key()] = finished
            bar.update(1)
    ds = build_dataset(config, [parts[spec.key()] for spec in stacks])
    if todo:
        ds.attrs["executor"] = executor.describe()
    for name, kind in STACK_ATTRS.items():  # more than one value where a study was resumed elsewhere
        values = sorted({kind(part.attrs[name]) for part in parts.values() if name in part.attrs})
        if values:
            ds.attrs[name] = values[0] if len(values) == 1 else ", ".join(map(str, values))
    return ds


def model_labels(config: StudyConfig, coords: dict[str, list]) -> xr.DataArray:
    """The ``model`` coordinate: each named model's label at its (cell, init, nonlinearity), "" elsewhere."""
    labels = np.full([len(coords[d]) for d in ("cell", "init", "nonlinearity")], "", dtype=object)
    for _, named in MODELS.items():
        if named.cell in coords["cell"] and named.init in coords["init"] \
                and named.nonlinearity in coords["nonlinearity"] \
                and all(config.options_for(named.cell).get(k) == v for k, v in named.options.items()):
            labels[coords["cell"].index(named.cell), coords["init"].index(named.init),
                   coords["nonlinearity"].index(named.nonlinearity)] = named.label
    return xr.DataArray(labels.astype(str), dims=("cell", "init", "nonlinearity"),
                        attrs={"long_name": "named model at this grid point (empty: none)"})


def build_dataset(config: StudyConfig, parts: list[xr.Dataset]) -> xr.Dataset:
    """Merge the stack datasets of a study into its labelled dataset, in the config's coordinate order."""
    ds = xr.merge(parts, join="outer", compat="no_conflicts", combine_attrs="drop")
    coords = config.sweep_coords()
    order = dict(coords)
    if "gate" in ds.dims:
        order["gate"] = list(dict.fromkeys(g for cell in coords["cell"] for g in get_cell(cell).gates))
    if "time" in ds.dims:
        order["time"] = np.arange(max(config.seq_len) + 1)
    ds = canonical_order(ds.reindex(order))
    task = config.build_task(config.seq_len[0], config.seeds[0], train_size=1, test_size=1)
    test_note = ("the whole test set" if config.probe_test_size == 0
                 else f"the first {config.probe_test_size} test sequences (or all, if fewer)")
    extra = {
        "test_loss": {"evaluated_on": test_note},
        "test_metric": {"long_name": task.metric_long_name, "units": task.metric_units, "metric": task.metric_name,
                        "evaluated_on": test_note},
        "test_loss_baseline": {"baseline": task.baseline, "evaluated_on": test_note},
        "test_metric_baseline": {"baseline": task.baseline, "evaluated_on": test_note},
    }
    settings = config.probe_settings(config.seq_len[0])
    for name in config.recorded_probes():
        extra.update(PROBES.get(name).attrs(settings))
    variables = schema()
    for name in ds.data_vars:
        ds[name].attrs = {**variables[name].attrs(), **extra.get(name, {})}
    described = record_dims()
    for dim in ds.dims:
        if dim in described:
            ds[dim].attrs = {"long_name": described[dim][0], "units": described[dim][1]}
        elif dim in SWEEP_DIMS:
            ds[dim].attrs = {"long_name": SWEEP_DIMS[dim]}
    ds = ds.assign_coords(model=model_labels(config, coords))
    ds.attrs = provenance(config.to_dict())
    ds.attrs.update(task=config.task, metric=task.metric_name,
                    metric_higher_is_better=int(task.metric_higher_is_better), baseline=task.baseline,
                    input_size=task.input_size, output_size=task.output_size, readout=task.readout, **task.attrs())
    return mask_after_divergence(ds)

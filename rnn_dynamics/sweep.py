"""A study: a grid of configurations, grouped into stacks of cells, run and recorded.

Cells that share task, nonlinearity, sizes, sequence length and seed form one stack:
they train together in one time loop on the same batches (fast, and a paired
comparison of inits). Every stack is independent of the others and of the order in
which stacks run, since every generator is seeded from coordinates.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .cells import ElmanStack
from .checkpoints import StackCheckpoints
from .inits import DEFAULT_INITS, parse_init_spec
from .jacobians import default_lags
from .nonlinearities import check_nonlinearity
from .probes import LyapunovProbe, Prober
from .records import SCHEMA, CellRecord, assemble, mask_after_divergence, provenance
from .tasks import make_task
from .train import TrainConfig, train_stack

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class StudyConfig:
    """Everything that defines a study. Lists are swept; scalars are shared by all cells."""

    task: str = "adding"
    seq_len: list[int] = field(default_factory=lambda: [50])
    inits: list[str] = field(default_factory=lambda: list(DEFAULT_INITS))
    nonlinearities: list[str] = field(default_factory=lambda: ["relu", "tanh"])
    seeds: list[int] = field(default_factory=lambda: [0])
    hidden: int = 100
    layers: int = 1
    batch_size: int = 16
    preset: str = "default"
    input_std: float = 0.001
    output_std: float = 0.001
    bias: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)
    probe_batch: int = 4
    probe_test_size: int = 256
    all_lags: bool = False
    lyapunov: bool = False
    lyapunov_warmup: int | None = None
    lyapunov_reortho_every: int = 1
    device: str = "cpu"
    dtype: str = "float32"

    def validate(self) -> "StudyConfig":
        """Raise ValueError naming the first bad setting (and the valid values where there is a list)."""
        for label, values in (("--seq-len", self.seq_len), ("--inits", self.inits),
                              ("--nonlinearities", self.nonlinearities), ("--seeds", self.seeds)):
            if not values:
                raise ValueError(f"{label} needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{label} has repeated values: {values}")
        for label, value in (("--hidden", self.hidden), ("--layers", self.layers),
                             ("--batch-size", self.batch_size), ("--probe-batch", self.probe_batch)):
            if value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value}")
        if self.probe_test_size < 0:
            raise ValueError(f"--probe-test-size must be >= 0 (0 = the whole test set), got {self.probe_test_size}")
        for seq_len in self.seq_len:
            if seq_len < 1:
                raise ValueError(f"--seq-len must be positive, got {seq_len}")
        if self.lyapunov_warmup is not None and not 0 <= self.lyapunov_warmup < min(self.seq_len):
            raise ValueError(f"--lyapunov-warmup must lie in 0..{min(self.seq_len) - 1} (below every --seq-len), "
                             f"got {self.lyapunov_warmup}")
        if self.lyapunov_reortho_every < 1:
            raise ValueError(f"--lyapunov-reortho-every must be >= 1, got {self.lyapunov_reortho_every}")
        for spec in self.inits:
            parse_init_spec(spec)
        for name in self.nonlinearities:
            check_nonlinearity(name)
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid dtypes: {', '.join(DTYPES)}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"unknown device {self.device!r}; valid devices: cpu, cuda, cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but torch sees no CUDA GPU; use --device cpu")
        self.train.validate()
        for seq_len in self.seq_len:  # builds one-sequence sets: checks the task's own options cheaply
            make_task(self.task, seq_len=seq_len, seed=self.seeds[0], batch_size=self.batch_size,
                      preset=self.preset, train_size=1, test_size=1)
        return self

    def sweep_coords(self) -> dict[str, list]:
        """The study's sweep dims and their coordinates; ``seq_len`` only when it takes several values."""
        coords = {"init": list(self.inits), "nonlinearity": list(self.nonlinearities), "seed": list(self.seeds)}
        if len(self.seq_len) > 1:
            coords["seq_len"] = list(self.seq_len)
        return coords

    def lyapunov_probe(self) -> LyapunovProbe | None:
        """The Lyapunov probe settings, or None when --lyapunov is off."""
        return LyapunovProbe(self.lyapunov_warmup, self.lyapunov_reortho_every) if self.lyapunov else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StackSpec:
    """One unit of work: the cells (inits) that share everything else."""

    nonlinearity: str
    seq_len: int
    seed: int
    inits: tuple[str, ...]

    def key(self) -> str:
        """A file-name-safe label of the stack's coordinates."""
        return f"{self.nonlinearity}_T{self.seq_len}_seed{self.seed}"


def plan_stacks(config: StudyConfig) -> list[StackSpec]:
    """The stacks of a study, in a fixed order."""
    return [
        StackSpec(nonlinearity, seq_len, seed, tuple(config.inits))
        for seed, seq_len, nonlinearity in itertools.product(config.seeds, config.seq_len, config.nonlinearities)
    ]


def run_stack(config: StudyConfig, spec: StackSpec, on_step=None) -> list[CellRecord]:
    """Build, train and probe one stack; one record per cell."""
    device, dtype = torch.device(config.device), DTYPES[config.dtype]
    task = make_task(config.task, seq_len=spec.seq_len, seed=spec.seed, batch_size=config.batch_size,
                     preset=config.preset)
    model = ElmanStack.from_inits(
        spec.inits, task.input_size, config.hidden, task.output_size, spec.nonlinearity, config.layers,
        task.readout, seed=spec.seed, input_std=config.input_std, output_std=config.output_std,
        bias=config.bias,
    ).to(device=device, dtype=dtype)
    task.train_x, task.test_x = task.train_x.to(dtype), task.test_x.to(dtype)
    lags = list(range(1, spec.seq_len + 1)) if config.all_lags else default_lags(spec.seq_len)
    prober = Prober(task, lags, config.probe_batch, config.probe_test_size, config.lyapunov_probe())
    result = train_stack(model, task, config.train, prober, on_step)
    records = []
    for cell, init in enumerate(spec.inits):
        data = {"train_loss": result.train_loss[:, cell], "diverged_step": result.diverged_step[cell], "lag": lags}
        for name in result.probes[0] if result.probes else ():
            axis = SCHEMA[name].dims.index("step")
            data[name] = np.stack([probe[name][cell] for probe in result.probes], axis=axis)
        coords = {"init": init, "nonlinearity": spec.nonlinearity, "seed": spec.seed, "seq_len": spec.seq_len}
        records.append(CellRecord(coords, data))
    return records


def run_study(config: StudyConfig, progress: bool = True,
              checkpoints: StackCheckpoints | None = None) -> xr.Dataset:
    """Run every stack of ``config`` in this process and return the study dataset.

    With ``checkpoints``, each finished stack is saved at once and stacks saved by an
    earlier, interrupted run of the same configuration are loaded instead of rerun.
    """
    config.validate()
    stacks = plan_stacks(config)
    records: list[CellRecord] = []
    with tqdm(total=len(stacks) * config.train.steps, disable=not progress, unit="step",
              desc="training stacks") as bar:
        for spec in stacks:
            key = spec.key()
            saved = checkpoints.load(key) if checkpoints is not None else None
            if saved is not None:
                records.extend(saved)
                bar.update(config.train.steps)
                continue
            bar.set_postfix_str(key)
            finished = run_stack(config, spec, on_step=lambda: bar.update(1))
            if checkpoints is not None:
                checkpoints.save(key, finished)
            records.extend(finished)
    return build_dataset(config, records)


def build_dataset(config: StudyConfig, records: list[CellRecord]) -> xr.Dataset:
    """Assemble the per-cell records of a study into its labelled dataset."""
    train = config.train
    probe_steps = []
    if train.probe_every > 0:
        probe_steps = sorted(set(range(0, train.steps, train.probe_every)) | {train.steps})
    max_len = max(config.seq_len)
    lags = sorted({lag for r in records for lag in r.data["lag"]})
    record_coords = {
        "layer": np.arange(config.layers),
        "step": np.asarray(probe_steps, dtype=np.int64),
        "iteration": np.arange(train.steps),
        "eig": np.arange(config.hidden),
        "sv": np.arange(config.hidden),
        "lag": np.asarray(lags, dtype=np.int64),
        "time": np.arange(max_len + 1),
        "exponent": np.arange(1, config.hidden + 1),
    }
    if not probe_steps:  # --probe-every 0: nothing but the training losses was recorded
        record_coords = {"iteration": record_coords["iteration"]}
    task = make_task(config.task, seq_len=config.seq_len[0], seed=0, batch_size=config.batch_size,
                     preset=config.preset, train_size=1, test_size=1)
    test_note = ("the whole test set" if config.probe_test_size == 0
                 else f"the first {config.probe_test_size} test sequences (or all, if fewer)")
    variable_attrs = {
        "test_loss": {"evaluated_on": test_note},
        "test_metric": {"long_name": task.metric_long_name, "units": task.metric_units,
                        "metric": task.metric_name, "evaluated_on": test_note},
    }
    if config.lyapunov:
        described = config.lyapunov_probe().describe()
        variable_attrs["lyapunov"] = {**described, "method": "QR (sign-fixed, float64)"}
        variable_attrs["lyapunov_benettin"] = {"warmup_steps": described["warmup_steps"], "eps": 1e-7}
    attrs = provenance(config.to_dict())
    attrs["task"] = config.task
    ds = assemble(records, config.sweep_coords(), record_coords, attrs, variable_attrs)
    return mask_after_divergence(ds)

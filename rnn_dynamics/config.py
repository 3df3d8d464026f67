"""Study and training configurations: the one place for every setting's name, default and help.

The command line (``analyses.cli``) is generated from these dataclasses: a field ``seq_len``
is the flag ``--seq-len``, with the field's default and help text. :meth:`validate`
raises :class:`ConfigError` naming the field; the command line reports it under the
field's flag. Lists are swept; scalars are shared by every cell of the study.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Callable

import torch

from .dtypes import DTYPES
from .fixed_points import HELD_INPUTS
from .inits import DEFAULT_INITS, list_inits, make_recurrent, parse_init_spec
from .jacobians import default_lags
from .models import CELLS, get_cell, list_cells
from .nonlinearities import NONLINEARITIES
from .optimizers import OPTIMIZERS
from .paper import MODELS, expand_models
from .plugins import load_plugins, plugin_path
from .probes import ProbeSettings, default_probes, list_probes
from .seeding import generator_for
from .tasks import TASKS, get_task, list_tasks

#: validate() builds one recurrent block per init up to this hidden size (a few ms at N = 100).
_BUILD_CHECK_LIMIT = 2048


class ConfigError(ValueError):
    """A bad setting. ``str()`` names the config field; ``field`` lets a front end name its own flag."""

    def __init__(self, field_name: str, message: str):
        self.field, self.message = field_name, message
        super().__init__(f"{field_name} {message}")


def setting(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING, metavar: str | None = None,
            names: Callable[[], list[str]] | None = None):
    """A config field carrying its help text (and, for registry-backed names, the list of valid ones)."""
    return field(default=default, default_factory=default_factory,
                  metadata={"help": help, "metavar": metavar, "names": names})


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")


def _distinct(name: str, values: list) -> None:
    if not values:
        raise ConfigError(name, "needs at least one value")
    if len(set(values)) != len(values):
        raise ConfigError(name, f"has repeated values: {values}")


@dataclass
class TrainConfig:
    """How a stack is trained."""

    steps: int = setting(2000, help="optimizer updates")
    lr: float = setting(1e-3, help="learning rate")
    optimizer: str = setting("adam", help="optimizer", names=OPTIMIZERS.names)
    momentum: float = setting(0.9, help="momentum for sgd and rmsprop")
    clip: float = setting(1.0, help="per-cell gradient-norm clipping threshold; 0 disables it")
    probe_every: int | None = setting(
        None, metavar="K", help="record every K updates (and at 0 and the end); 0 records nothing but the training "
                                "losses; default: min(100, max(1, steps // 10))")

    def probe_interval(self) -> int:
        """The probe interval in updates (0: no probes), the default fitted to ``steps``."""
        return min(100, max(1, self.steps // 10)) if self.probe_every is None else self.probe_every

    def probe_steps(self) -> list[int]:
        """The steps at which probes run: 0, K, 2K, ... and the last step; none when K is 0."""
        every = self.probe_interval()
        return sorted(set(range(0, self.steps, every)) | {self.steps}) if every else []

    def validate(self) -> "TrainConfig":
        _positive("steps", self.steps)
        if not self.lr > 0:
            raise ConfigError("lr", f"must be positive, got {self.lr}")
        OPTIMIZERS.get(self.optimizer)
        if self.clip < 0:
            raise ConfigError("clip", f"must be >= 0 (0 disables clipping), got {self.clip}")
        if self.probe_every is not None and not 0 <= self.probe_every <= self.steps:
            raise ConfigError("probe_every", f"must lie in 0..{self.steps} (steps), got {self.probe_every}")
        return self


@dataclass
class StudyConfig:
    """Everything that defines a study."""

    task: str = setting("adding", help="workload", names=list_tasks)
    seq_len: list[int] = setting(default_factory=list, metavar="T",
                                 help="sequence length(s); default: the task's own (--list-tasks shows it)")
    cells: list[str] = setting(default_factory=lambda: ["elman"], help="cell types; each is a coordinate of the "
                                                                       "cell dim", names=list_cells)
    inits: list[str] = setting(default_factory=lambda: list(DEFAULT_INITS), metavar="SPEC",
                               help="recurrent inits, name or name:key=value[,key=value]; for gated cells every "
                                    "recurrent block gets one", names=list_inits)
    nonlinearities: list[str] = setting(default_factory=lambda: ["relu", "tanh"],
                                        help="nonlinearities (for gated cells: candidate and cell output)",
                                        names=NONLINEARITIES.names)
    models: list[str] = setting(default_factory=list, metavar="MODEL",
                                help="named models (cell, nonlinearity, init) instead of the cross product of "
                                     "cells, inits and nonlinearities; 'paper' = the paper's four",
                                names=lambda: [*MODELS.names(), "paper"])
    seeds: list[int] = setting(default_factory=lambda: [0], help="seeds; each is a coordinate")
    hidden: int = setting(100, help="hidden units per layer")
    layers: int = setting(1, help="stacked recurrent layers")
    batch_size: int = setting(16, help="training minibatch size")
    preset: str = setting("default", help="a named size of the task: its dataset sizes and the settings it "
                                          "implies where no flag gives them (tiny, default, quick, paper; "
                                          "--list-tasks shows each)")
    data_dir: str | None = setting(None, metavar="DIR", help="data root; default: $RNN_DYNAMICS_DATA, else "
                                                             "~/.cache/rnn-dynamics")
    input_std: float = setting(0.001, help="std of the input weights")
    output_std: float = setting(0.001, help="std of the readout weights")
    bias: float = setting(0.0, help="initial bias of every gate (0, as in the paper)")
    cell_options: dict = setting(default_factory=dict,
                                 help="options of the cell types, e.g. {'forget_bias': 2.0}; each cell type "
                                      "declares its own and its default")
    task_options: dict = setting(default_factory=dict,
                                 help="options of the task, e.g. {'level': 'char'}; each task declares its own")
    train: TrainConfig = field(default_factory=TrainConfig)
    probes: list[str] = setting(default_factory=default_probes, metavar="PROBE",
                                help="what to record at each probe step ('default': every probe that is on by "
                                     "default, e.g. --probes default lag_spectra)",
                                names=lambda: [*list_probes(), "default"])
    probe_batch: int = setting(4, help="test sequences used by the Jacobian, gradient and state probes")
    probe_test_size: int = setting(0, help="test sequences scored for test_loss and test_metric; 0 = the whole "
                                           "test set")
    all_lags: bool = setting(False, help="record ||ds_T/ds_{T-k}|| at every lag k instead of ~30 log-spaced lags")
    lyapunov: bool = setting(False, help="also record the Lyapunov spectrum (QR) and the Benettin largest "
                                         "exponent (the lyapunov probe)")
    lyapunov_warmup: int | None = setting(None, metavar="STEPS", help="steps discarded before Lyapunov "
                                                                      "exponents are accumulated; default T // 10")
    lyapunov_reortho_every: int = setting(1, metavar="K", help="longest interval between re-orthonormalisations")
    fixed_point_input: str = setting("zero", help="the input the fixed_points probe holds constant: zero (the "
                                                  "network left to itself) or mean (the probe sequences' mean input)",
                                     names=lambda: list(HELD_INPUTS))
    device: str = setting("cpu", help="torch device: cpu, cuda or cuda:N")
    dtype: str = setting("float32", help="training dtype", names=DTYPES.names)
    plugins: list[str] = setting(default_factory=list, metavar="MODULE|FILE.py",
                                 help="your own plug-ins (inits, nonlinearities, cells, probes, tasks, models): "
                                      "modules or .py files, imported before any name is looked up, here and in "
                                      "every worker")

    def __post_init__(self):
        self.plugins = [plugin_path(name) for name in self.plugins]
        self.load_plugins()
        if not self.seq_len and self.task in TASKS.names():
            self.seq_len = [get_task(self.task).default_length(self.data_dir, **self.task_options)]

    def load_plugins(self) -> None:
        """Import the study's plug-ins (and installed packages' ones) in this process, if not yet done."""
        try:
            load_plugins(self.plugins)
        except ValueError as err:
            raise ConfigError("plugins", str(err)) from None

    @classmethod
    def from_preset(cls, task: str, preset: str, **given) -> "StudyConfig":
        """The study ``preset`` of ``task`` describes, with ``given`` fields (study or training ones,
        e.g. ``steps``) kept over the preset's values."""
        presets = get_task(task).presets
        if preset not in presets:
            raise ConfigError("preset", f"{preset!r} is not a preset of task {task!r}; valid: {', '.join(presets)}")
        values = {**presets[preset].settings, **given}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        train = values.pop("train", None) or TrainConfig(
            **{key: values.pop(key) for key in list(values) if key in train_fields})
        return cls(task=task, preset=preset, train=train, **values)

    def build_task(self, seq_len: int, seed: int, **sizes):
        """The study's task at ``seq_len`` and ``seed`` (``train_size``/``test_size`` override the preset's)."""
        return get_task(self.task).build(seq_len=seq_len, seed=seed, batch_size=self.batch_size, preset=self.preset,
                                         data_dir=self.data_dir, **sizes, **self.task_options)

    # ------------------------------------------------------------ derived views

    def model_names(self) -> list[str]:
        """The named models of ``models`` with ``paper`` expanded."""
        return expand_models(self.models)

    def points(self) -> list[tuple[str, str, str]]:
        """The (cell, nonlinearity, init) combinations the study runs, in a fixed order."""
        if self.models:
            return [(m.cell, m.nonlinearity, m.init) for m in map(MODELS.get, self.model_names())]
        return list(itertools.product(self.cells, self.nonlinearities, self.inits))

    def sweep_coords(self) -> dict[str, list]:
        """Every sweep dim and its coordinates, in order of first appearance (all five dims, always)."""
        points = self.points()
        unique = lambda values: list(dict.fromkeys(values))  # noqa: E731
        return {"cell": unique(p[0] for p in points), "init": unique(p[2] for p in points),
                "nonlinearity": unique(p[1] for p in points), "seq_len": list(self.seq_len), "seed": list(self.seeds)}

    def options_for(self, cell: str) -> dict:
        """The options of cell type ``cell``: its defaults, overridden by ``cell_options``."""
        declared = get_cell(cell).options
        return {name: self.cell_options.get(name, option.default) for name, option in declared.items()}

    def recorded_probes(self) -> list[str]:
        """The probes to run: ``probes`` (``default`` standing for every probe on by default), plus ``lyapunov``
        when that flag is set."""
        named = []
        for given in self.probes:
            if given != "default" and given not in list_probes():
                raise ValueError(f"unknown probe {given!r}; valid probes: {', '.join(list_probes())}, "
                                 f"default ({', '.join(default_probes())})")
            named += default_probes() if given == "default" else [given]
        return list(dict.fromkeys([*named, *(["lyapunov"] if self.lyapunov else [])]))

    def probe_settings(self, seq_len: int) -> ProbeSettings:
        lags = range(1, seq_len + 1) if self.all_lags else default_lags(seq_len)
        return ProbeSettings(tuple(lags), self.probe_batch, self.probe_test_size, self.lyapunov_warmup,
                             self.lyapunov_reortho_every, self.fixed_point_input)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------ validation

    def validate(self) -> "StudyConfig":
        """Raise ConfigError naming the first bad setting (with the valid values where there is a list)."""
        self.validate_probing()
        if self.models:
            defaults = StudyConfig()
            for name in ("cells", "inits", "nonlinearities"):
                if getattr(self, name) != getattr(defaults, name):
                    raise ConfigError("models", f"fixes cell, init and nonlinearity; it cannot be combined with {name}")
            self.model_names()
        else:
            for name in ("cells", "inits", "nonlinearities"):
                _distinct(name, getattr(self, name))
        for name in ("hidden", "layers", "batch_size"):
            _positive(name, getattr(self, name))
        self._validate_cells()
        self.train.validate()
        return self

    def validate_probing(self) -> "StudyConfig":
        """Raise ConfigError naming the first bad setting of the task and the probes: all a study of networks
        trained elsewhere (:func:`~rnn_dynamics.sweep.probe_study`) reads."""
        get_task(self.task)
        for name in ("seq_len", "seeds", "probes", "inits"):
            _distinct(name, getattr(self, name))
        _positive("probe_batch", self.probe_batch)
        for seq_len in self.seq_len:
            _positive("seq_len", seq_len)
        if self.probe_test_size < 0:
            raise ConfigError("probe_test_size", f"must be >= 0 (0 = the whole test set), got {self.probe_test_size}")
        if self.lyapunov_warmup is not None and not 0 <= self.lyapunov_warmup < min(self.seq_len):
            raise ConfigError("lyapunov_warmup", f"must lie in 0..{min(self.seq_len) - 1} (below every seq_len), "
                                                 f"got {self.lyapunov_warmup}")
        _positive("lyapunov_reortho_every", self.lyapunov_reortho_every)
        if self.fixed_point_input not in HELD_INPUTS:
            raise ConfigError("fixed_point_input", f"{self.fixed_point_input!r} is not one of {', '.join(HELD_INPUTS)}")
        self.recorded_probes()  # an unknown name fails, listing the valid ones
        DTYPES.get(self.dtype)
        self._validate_device()
        for seq_len in self.seq_len:  # builds one-sequence sets: checks the task's data and options cheaply
            self.build_task(seq_len, self.seeds[0], train_size=1, test_size=1)
        return self

    def _validate_cells(self) -> None:
        for cell, nonlinearity, init in self.points():
            get_cell(cell).check_nonlinearity(nonlinearity)
            if self.hidden <= _BUILD_CHECK_LIMIT:  # builds one block: catches what only the size reveals
                make_recurrent(init, self.hidden, nonlinearity, generator_for("validate", init))
            else:
                parse_init_spec(init)
        declared = {name: cell for cell, cls in CELLS.items() for name in cls.options}
        for name, value in self.cell_options.items():
            if name not in declared:
                valid = ", ".join(sorted(declared)) or "none"
                raise ConfigError("cell_options", f"has unknown option {name!r}; options of the cell types: {valid}")
            if declared[name] not in self.sweep_coords()["cell"]:
                raise ConfigError(name, f"is an option of cell {declared[name]!r}, which this study does not run")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(name, f"must be a number, got {value!r}")

    def _validate_device(self) -> None:
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ConfigError("device", f"{self.device!r} is not a device; valid: cpu, cuda, cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", f"{self.device!r} requested but torch sees no CUDA GPU; use cpu")

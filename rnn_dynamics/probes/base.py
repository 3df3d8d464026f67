"""The probe protocol: what a probe declares, what it sees at a probe step, and its registry."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch
import xarray as xr

from ..records import RECORD_DIMS, Variable
from ..registry import Registry


@dataclass(frozen=True)
class ProbeSettings:
    """The study settings probes read: lags of the Jacobian products, probe and test sizes, Lyapunov options, the
    input the fixed-point searches hold."""

    lags: tuple[int, ...]
    probe_batch: int = 4
    test_size: int = 1000
    lyapunov_warmup: int | None = None
    lyapunov_reortho_every: int = 1
    fixed_point_input: str = "zero"

    def lyapunov_warmup_steps(self, seq_len: int) -> int:
        """Steps discarded before Lyapunov exponents are accumulated (default T // 10)."""
        return seq_len // 10 if self.lyapunov_warmup is None else self.lyapunov_warmup


@dataclass(frozen=True)
class StackShape:
    """What the size of a stack's records depends on: cells M, layers L, recurrent blocks G per layer, hidden
    size N, state size S, recorded lags and parameters per cell."""

    cells: int
    layers: int
    gates: int
    hidden: int
    state: int
    lags: int
    parameters: int


class ProbeContext:
    """What every probe sees at one probe step of one stack.

    ``x``, ``y`` are the probe sequences (the task's :meth:`~rnn_dynamics.tasks.Task.probe_sequences`, the
    same at every step and for every cell); :attr:`trace` is the traced forward pass on
    them, computed once and shared by every probe of the step. ``initial_blocks`` are the stack's
    recurrent blocks (M, L, G, N, N) at its step 0, on the CPU; where not given, the model's blocks as the
    context is made (right for a context at step 0).
    """

    def __init__(self, model, task, step: int, settings: ProbeSettings, inits,
                 initial_blocks: torch.Tensor | None = None):
        self.model, self.task, self.step, self.settings, self.inits = model, task, step, settings, list(inits)
        self.initial_blocks = (model.recurrent_blocks() if initial_blocks is None else initial_blocks).cpu()
        device = model.w_out.device
        self.x, self.y = (t.to(device) for t in task.probe_sequences(settings.probe_batch))

    @cached_property
    def cpu_context(self) -> ProbeContext:
        """This context on the CPU: itself there, else the same step on a CPU copy of the stack (with its
        own shared trace) for the probes whose long chains of small matrix operations a GPU runs slower."""
        if self.model.w_out.device.type == "cpu":
            return self
        return ProbeContext(copy.deepcopy(self.model).cpu(), self.task, self.step, self.settings, self.inits,
                            self.initial_blocks)

    @cached_property
    def trace(self):
        with torch.no_grad():
            return self.model.trace(self.x)

    def coordinate(self, dim: str, size: int) -> np.ndarray:
        """The coordinate of a recording dim of ``size`` entries."""
        if dim == "gate":
            return np.asarray(self.model.gates)
        if dim == "lag":
            return np.asarray(self.settings.lags, dtype=np.int64)
        start = 1 if dim == "exponent" else 0
        return np.arange(start, start + size)

    def data_array(self, variable: Variable, values) -> xr.DataArray:
        """``values`` (M, ...) as a DataArray with dims (init, the variable's dims without step)."""
        values = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        dims = [d for d in variable.dims if d != "step"]
        coords = {"init": self.inits}
        coords.update({dim: self.coordinate(dim, size) for dim, size in zip(dims, values.shape[1:])})
        return xr.DataArray(values, dims=["init", *dims], coords=coords)


class Probe:
    """A recorded quantity. Subclasses declare ``name``, ``variables`` (with their dims, which
    include ``step``) and ``default`` (recorded unless the study deselects it), and
    implement :meth:`record`."""

    name: ClassVar[str] = ""
    variables: ClassVar[dict[str, Variable]] = {}
    #: Recording dims this probe brings that :data:`~rnn_dynamics.records.RECORD_DIMS` lacks: name -> (meaning,
    #: units).
    dims: ClassVar[dict[str, tuple[str, str]]] = {}
    default: ClassVar[bool] = True
    #: Run on a CPU copy of a GPU stack: true for probes made of sequential small matrix operations
    #: (per-step Jacobians, QR, eigendecompositions of N x N blocks), which launch-bound GPUs run slower.
    runs_on_cpu: ClassVar[bool] = True
    #: Reads the network's output (its loss on the task): meaningless for a network held without its readout.
    reads_output: ClassVar[bool] = False

    def record(self, ctx: ProbeContext) -> dict[str, torch.Tensor | np.ndarray]:
        """One array (M, ...) per declared variable, the ``step`` dim left out."""
        raise NotImplementedError

    def bytes_per_probe(self, shape: StackShape) -> int:
        """What this probe's arrays add to a stack's records at each probe step, where that can be large enough
        to matter beside training (the study's memory check adds it up over the probe steps); 0 otherwise."""
        return 0

    def attrs(self, settings: ProbeSettings) -> dict[str, dict]:
        """Extra attrs per variable that depend on the study's settings."""
        return {}

    def __call__(self, ctx: ProbeContext) -> dict[str, xr.DataArray]:
        ctx = ctx.cpu_context if self.runs_on_cpu else ctx
        values = self.record(ctx)
        missing = sorted(set(self.variables) - set(values))
        if missing:
            raise RuntimeError(f"probe {self.name!r} did not record {', '.join(missing)}")
        return {name: ctx.data_array(self.variables[name], values[name]) for name in self.variables}


PROBES: Registry[Probe] = Registry("probe")


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: register an instance of a :class:`Probe` subclass under its ``name``."""
    if not cls.name or not cls.variables:
        raise ValueError(f"probe {cls.__name__} must declare a name and its variables")
    undescribed = sorted({dim for variable in cls.variables.values() for dim in variable.dims}
                         - set(RECORD_DIMS) - set(cls.dims))
    if undescribed:
        raise ValueError(f"probe {cls.name!r} records dims {', '.join(undescribed)} that neither RECORD_DIMS nor its "
                         "own dims describe")
    PROBES.add(cls.name, cls())
    return cls


def list_probes() -> list[str]:
    """Names of every registered probe, sorted."""
    return PROBES.names()


def default_probes() -> list[str]:
    """The probes a study records unless told otherwise."""
    return [name for name, probe in PROBES.items() if probe.default]


def log_mean_exp(log_values: torch.Tensor, dim: int) -> torch.Tensor:
    """ln(mean(exp(x))) along ``dim``, exact for values far outside the float range."""
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])

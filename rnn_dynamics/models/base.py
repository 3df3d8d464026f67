"""The model protocol: a stack of M independent recurrent networks of one cell type.

A stack holds M cells with identical shapes; every parameter carries a leading cell
dim and each time step advances all cells with batched matmuls. Every cell type
(one module in this folder) subclasses :class:`RecurrentStack` and declares:

- ``gates``: the names of its N x N recurrent blocks, stored stacked in ``w_hh[layer]``
  as (M, G * N, N) in that order (rows are receiving units);
- ``state_parts``: the parts of its state, each of N units, ``h`` first (the LSTM's is
  ``("h", "c")``), so the full state has S = len(state_parts) * N units;
- ``nonlinearities``: the nonlinearity names it accepts (None: any registered one);
- ``options``: its own settings (name -> :class:`Option`), such as the LSTM's forget bias;
- ``torch_modules``: the ``torch.nn`` modules whose trained weights it can hold (:func:`rnn_dynamics.from_torch`),
  with :meth:`load_torch_layer` where its layout is not torch's;

and implements the cell maths: :meth:`step` (one time step, shared by the traced
forward, direct simulation and the autograd reference), :meth:`forward` (the fast
training path), :meth:`step_jacobians` (ds_t/ds_{t-1} along a trace) and
:meth:`activations`. Nothing outside a cell's own module dispatches on its class.

Conventions: batches are time-major, ``x`` of shape (T, B, I) shared by every cell;
``layer_drive`` is the input part of every gate's pre-activation, W_ih x_t + b.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import torch
from torch import nn

from ..inits import make_recurrent
from ..jacobians import DenseJacobians, JacobianSequence, step_jacobians_autograd
from ..nonlinearities import Nonlinearity, get_nonlinearity
from ..registry import Option, Registry, parse_options
from ..seeding import generator_for
from ._drive import SharedInputDrive

READOUTS = ("last", "all")

#: Time steps whose backward coefficients a hand-written backward computes together: few enough to
#: stay in cache (measured: the LSTM backward of a stack of 4 at T = 784 went from about 270 to 150 ms).
BACKWARD_CHUNK = 64


def cell_major(by_step: torch.Tensor, copy: bool) -> torch.Tensor:
    """A loop's time-major states (T + 1, M, B, X) as the cell-major (M, T + 1, B, X) that the backwards, dL/dW and
    a layer above read: a copy where gradients are wanted (the time-major buffer can then be freed; writing
    cell-major slots step by step was slower), a view otherwise. The scan kernels write cell-major directly."""
    return by_step.transpose(0, 1).contiguous() if copy else by_step.transpose(0, 1)


@dataclass
class Trace:
    """What one traced forward pass leaves behind, per layer.

    ``states[l]`` is the list s_0..s_T (each (M, B, S), the full state, ``h`` in the first
    N units) and ``preacts[l]`` the list a_1..a_T (each (M, B, G * N), the pre-activations
    of every gate) of layer ``l``; ``drives[l]`` is the (T, M, B, G * N) input part of those
    pre-activations (:meth:`RecurrentStack.layer_drive`); ``outputs`` is (M, B, O) for a ``last`` readout and
    (T, M, B, O) for ``all``. The tensors are the ones autograd saw.
    """

    states: list[list[torch.Tensor]]
    preacts: list[list[torch.Tensor]]
    drives: list[torch.Tensor]
    outputs: torch.Tensor
    hidden_size: int

    def stacked_states(self, layer: int) -> torch.Tensor:
        """(T + 1, M, B, S) full states of ``layer``."""
        return torch.stack(self.states[layer])

    def stacked_preacts(self, layer: int) -> torch.Tensor:
        """(T, M, B, G * N) gate pre-activations of ``layer``."""
        return torch.stack(self.preacts[layer])

    def hidden(self, layer: int) -> torch.Tensor:
        """(T + 1, M, B, N) hidden states h_0..h_T of ``layer`` (what the next layer and the readout see)."""
        return self.stacked_states(layer)[..., :self.hidden_size]


StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class RecurrentStack(nn.Module):
    """M independent L-layer recurrent networks of one cell type with a linear readout."""

    cell_type: ClassVar[str] = ""
    gates: ClassVar[tuple[str, ...]] = ()
    state_parts: ClassVar[tuple[str, ...]] = ("h",)
    nonlinearities: ClassVar[tuple[str, ...] | None] = None
    options: ClassVar[dict[str, Option]] = {}
    #: The fast training path: an autograd Function called as
    #: ``fused.apply(drive, initial_state, *recurrent_params(layer), nonlinearity)`` that returns
    #: h_1..h_T (T, M, B, N) and the final full state s_T (M, B, S); the initial state (M, B, S) is a
    #: constant (truncated backpropagation through time). Where s_T is differentiable (the built-in
    #: cells: its gradient seeds the backward walk), a ``last`` readout reads h_T from it, so that its
    #: gradient is not a (T, M, B, N) tensor of zeros but for one step; a Function may also mark s_T
    #: non-differentiable. None trains through the traced loop.
    fused: ClassVar[type[torch.autograd.Function] | None] = None
    #: The ``torch.nn`` modules (nn.RNN and nn.RNNCell, ...) whose trained weights this cell type can hold.
    torch_modules: ClassVar[tuple[type[nn.Module], ...]] = ()

    def __init__(self, n_cells: int, input_size: int, hidden_size: int, output_size: int,
                 nonlinearity: str = "relu", num_layers: int = 1, readout: str = "last", **options):
        super().__init__()
        for label, value in (("n_cells", n_cells), ("input_size", input_size), ("hidden_size", hidden_size),
                             ("output_size", output_size), ("num_layers", num_layers)):
            if int(value) < 1:
                raise ValueError(f"{label} must be a positive integer, got {value}")
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; valid readouts: {', '.join(READOUTS)}")
        self.activation: Nonlinearity = self.check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        self.settings = parse_options(f"cell {self.cell_type!r}", self.options, options)
        self.n_cells, self.hidden_size, self.num_layers, self.readout = n_cells, hidden_size, num_layers, readout
        m, n, g = n_cells, hidden_size, len(self.gates)
        self.w_ih = nn.ParameterList(
            nn.Parameter(torch.zeros(m, g * n, input_size if layer == 0 else n)) for layer in range(num_layers))
        self.w_hh = nn.ParameterList(nn.Parameter(torch.zeros(m, g * n, n)) for _ in range(num_layers))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(m, 1, g * n)) for _ in range(num_layers))
        self.w_out = nn.Parameter(torch.zeros(m, output_size, n))
        self.b_out = nn.Parameter(torch.zeros(m, 1, output_size))

    # ------------------------------------------------------------ declarations

    @classmethod
    def check_nonlinearity(cls, name: str) -> Nonlinearity:
        """The registered nonlinearity ``name`` if this cell type can take it; ValueError otherwise."""
        nonlinearity = get_nonlinearity(name)
        if cls.nonlinearities is not None and name not in cls.nonlinearities:
            raise ValueError(f"cell {cls.cell_type!r} cannot take nonlinearity {name!r}; "
                             f"valid for {cls.cell_type}: {', '.join(cls.nonlinearities)}")
        return nonlinearity

    @classmethod
    def state_size(cls, hidden_size: int) -> int:
        """S, the size of the full state."""
        return len(cls.state_parts) * hidden_size

    @classmethod
    def parameter_count(cls, input_size: int, hidden_size: int, output_size: int, num_layers: int) -> int:
        """Parameters of one cell (every layer, the readout, any extras a subclass adds)."""
        g, n = len(cls.gates), hidden_size
        per_layer = [g * n * (input_size if layer == 0 else n) + g * n * n + g * n for layer in range(num_layers)]
        return sum(per_layer) + output_size * n + output_size

    @classmethod
    def describe(cls) -> str:
        """One line for ``--list-cells``: gates, state, accepted nonlinearities, options."""
        accepted = "any" if cls.nonlinearities is None else ", ".join(cls.nonlinearities)
        options = ", ".join(f"{name}={option.default!r} ({option.help})" for name, option in cls.options.items())
        return (f"gates: {', '.join(cls.gates)}; state: ({', '.join(cls.state_parts)}); "
                f"nonlinearities: {accepted}" + (f"; options: {options}" if options else ""))

    # ------------------------------------------------------------ initialisation

    @classmethod
    def from_inits(cls, init_specs: Sequence[str], input_size: int, hidden_size: int, output_size: int,
                   nonlinearity: str = "relu", num_layers: int = 1, readout: str = "last", seed: int = 0,
                   input_std: float = 0.001, output_std: float = 0.001, bias: float = 0.0,
                   **options) -> "RecurrentStack":
        """One cell per init spec; weights drawn from generators seeded by coordinates.

        Input and output weights depend on (seed, layer) only, so every cell of a stack
        starts from the same input and readout weights and differs only in its recurrent
        blocks, each drawn from the init spec with a generator seeded by
        :meth:`recurrent_seed_parts`: a paired design. Biases start at ``bias`` (then
        :meth:`initial_bias` lets a cell type set its own, e.g. the LSTM's forget bias),
        input weights at N(0, input_std^2) as in Le et al. (2015); the readout bias at 0.
        """
        model = cls(len(init_specs), input_size, hidden_size, output_size, nonlinearity, num_layers, readout,
                    **options)
        n = hidden_size
        with torch.no_grad():
            for layer in range(num_layers):
                shape = model.w_ih[layer].shape[1:]
                shared = torch.randn(*shape, generator=generator_for("input", seed, layer), dtype=torch.float64)
                model.w_ih[layer].copy_((shared * input_std).expand(len(init_specs), *shape))
                model.bias[layer].copy_(model.initial_bias(bias).expand_as(model.bias[layer]))
                for cell, spec in enumerate(init_specs):
                    for gate_index, gate in enumerate(cls.gates):
                        gen = generator_for(*cls.recurrent_seed_parts(seed, spec, nonlinearity, layer, gate))
                        block = make_recurrent(spec, n, nonlinearity, gen)
                        model.w_hh[layer][cell, gate_index * n:(gate_index + 1) * n].copy_(block)
            shared = torch.randn(output_size, n, generator=generator_for("output", seed), dtype=torch.float64)
            model.w_out.copy_((shared * output_std).expand(len(init_specs), -1, -1))
        return model

    @classmethod
    def recurrent_seed_parts(cls, seed: int, spec: str, nonlinearity: str, layer: int, gate: str) -> tuple:
        """The coordinates that seed one recurrent block: distinct per cell type, gate and layer."""
        return ("recurrent", seed, spec, nonlinearity, layer, cls.cell_type, gate)

    def initial_bias(self, bias: float) -> torch.Tensor:
        """The (G * N,) initial bias of every layer: ``bias`` everywhere unless a cell type says otherwise."""
        return torch.full((len(self.gates) * self.hidden_size,), float(bias))

    def load_torch_layer(self, cell: int, layer: int, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                         bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> None:
        """Hold one layer of one of its ``torch_modules`` in cell ``cell``, given its tensors in torch's layout and
        gate order (float64; zero biases where the module has none). This default serves a cell whose gates are in
        torch's order and whose two biases only add (the Elman cell)."""
        with torch.no_grad():
            self.w_ih[layer][cell].copy_(weight_ih)
            self.w_hh[layer][cell].copy_(weight_hh)
            self.bias[layer][cell, 0].copy_(bias_ih + bias_hh)

    # ------------------------------------------------------------------ forward

    def layer_drive(self, layer: int, inputs: torch.Tensor) -> torch.Tensor:
        """W_ih x_t + b for every t: (T, M, B, G * N). ``inputs`` is (T, B, I) for layer 0, (T, M, B, N) above,
        or (T, B) integer tokens for layer 0: a column lookup in W_ih (the same as a one-hot input,
        without an I-wide matmul per step).

        The result is a view of cell-major memory (M, T, B, G * N), made in one pass (bias and product
        in one ``baddbmm``): each cell's steps are contiguous, as the scan kernels and the hand-written
        backwards walk them, and the gradient reaches W_ih and b without a transposing copy (for an input shared
        by every cell through :class:`~rnn_dynamics.models._drive.SharedInputDrive`, whose dL/dW_ih a GPU
        computes over chunks of the rows).
        """
        w, bias = self.w_ih[layer], self.bias[layer]
        if not inputs.is_floating_point():
            return (w.transpose(1, 2)[:, inputs] + bias.unsqueeze(1)).transpose(0, 1)
        m, steps, batch = w.shape[0], inputs.shape[0], inputs.shape[-2]
        if inputs.dim() == 3:  # shared by every cell: its own backward, which a GPU runs faster than autograd's
            drive = SharedInputDrive.apply(inputs.reshape(steps * batch, -1), w, bias)
        else:
            drive = torch.baddbmm(bias, inputs.transpose(0, 1).reshape(m, steps * batch, -1), w.transpose(1, 2))
        return drive.view(m, steps, batch, -1).transpose(0, 1)

    def recurrent_params(self, layer: int) -> tuple[torch.Tensor, ...]:
        """The tensors :meth:`step` needs besides the state and drive, batched over cells."""
        return (self.w_hh[layer],)

    def step(self, params: tuple[torch.Tensor, ...], state: torch.Tensor,
             drive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: (s_t, a_t) from s_{t-1} (..., S) and the drive (..., G * N).

        Written with broadcasting matmuls so that it serves a whole stack (params batched
        over cells, state (M, B, S)) and one cell and one sample (params of one cell,
        state (S,)), which ``torch.func`` can differentiate.
        """
        raise NotImplementedError

    def recurrence(self, layer: int) -> StepFn:
        """``step(state (M, B, S), drive_t (M, B, G * N)) -> (state, preact)`` of ``layer`` for the whole stack."""
        params = self.recurrent_params(layer)
        return lambda state, drive: self.step(params, state, drive)

    def recurrent_step(self, layer: int, cell: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``step(s (S,), drive (G * N,)) -> s`` for one cell and one sample: the generic path's map."""
        params = tuple(p[cell] for p in self.recurrent_params(layer))
        return lambda state, drive: self.step(params, state, drive)[0]

    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The zero state s_0 of every layer: (L, M, B, S)."""
        return torch.zeros(self.num_layers, self.n_cells, batch, self.state_size(self.hidden_size), dtype=like.dtype,
                           device=like.device)

    def trace(self, x: torch.Tensor, state: torch.Tensor | None = None, *, grad_wrt_states: bool = False) -> Trace:
        """The forward pass keeping every state and pre-activation (the plain per-step loop).

        ``x`` is (T, B, I) (or (T, B) tokens); ``state`` (L, M, B, S) the initial states (zero if
        None). With ``grad_wrt_states`` the initial states require grad so that gradients with
        respect to s_0 can be taken too. The reference the fast path is tested against.
        """
        self._check_input(x)
        n = self.hidden_size
        all_states, all_preacts, drives = [], [], []
        layer_input = x
        first = self.initial_state(x.shape[1], self.w_out) if state is None else state
        for layer in range(self.num_layers):
            drive = self.layer_drive(layer, layer_input)
            drives.append(drive)
            step = self.recurrence(layer)
            state = first[layer].detach().clone().requires_grad_(grad_wrt_states)
            states, preacts = [state], []
            for drive_t in drive.unbind(0):
                state, preact = step(state, drive_t)
                states.append(state)
                preacts.append(preact)
            all_states.append(states)
            all_preacts.append(preacts)
            layer_input = torch.stack(states[1:])[..., :n]
        return Trace(all_states, all_preacts, drives, self.read_out(layer_input), n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Readout of the top layer from zero states: (M, B, O) for ``last``, (T, M, B, O) for ``all``."""
        return self.forward_with_state(x)[0]

    def forward_with_state(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """``(outputs, final states (L, M, B, S))`` from initial states ``state`` (zero if None), by the cell
        type's ``fused`` recurrence layer by layer (no per-step autograd graph), or the traced loop.

        Gradients do not flow into ``state`` nor out of the final states returned: the truncated
        backpropagation through time of a task that carries its state across segments.
        """
        self._check_input(x)
        state = self.initial_state(x.shape[1], self.w_out) if state is None else state.detach()
        if self.fused is None:
            trace = self.trace(x, state)
            return trace.outputs, torch.stack([states[-1] for states in trace.states]).detach()
        hidden, finals = x, []
        for layer in range(self.num_layers):
            params = self.recurrent_params(layer)
            if not torch.is_grad_enabled():  # a Function's needs_input_grad ignores no_grad: say that none is wanted,
                params = [param.detach() for param in params]  # so that it keeps no buffers for a backward
            hidden, final = self.fused.apply(self.layer_drive(layer, hidden), state[layer], *params, self.activation)
            finals.append(final)
        if self.readout == "last" and finals[-1].requires_grad:
            hidden = finals[-1][..., :self.hidden_size].unsqueeze(0)  # h_T, whose gradient is one step's
        return self.read_out(hidden), torch.stack(finals).detach()

    def read_out(self, hidden: torch.Tensor) -> torch.Tensor:
        """The linear readout of top-layer hidden states h_1..h_T given as (T, M, B, N)."""
        if self.readout == "last":
            return torch.baddbmm(self.b_out, hidden[-1], self.w_out.transpose(1, 2))
        return torch.einsum("tmbn,mon->tmbo", hidden, self.w_out) + self.b_out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != (3 if x.is_floating_point() else 2):
            raise ValueError(f"input must be (T, B, I) values or (T, B) tokens, got {x.dtype} of shape "
                             f"{tuple(x.shape)}")

    # ------------------------------------------------------------- analysis

    def cell_parameters(self) -> list[torch.Tensor]:
        """Every parameter; each has the cell dim first."""
        return list(self.parameters())

    def recurrent_blocks(self) -> torch.Tensor:
        """Every recurrent block, detached: (M, L, G, N, N), blocks in the order of ``gates``."""
        m, n, g = self.n_cells, self.hidden_size, len(self.gates)
        return torch.stack([w.detach().reshape(m, g, n, n) for w in self.w_hh], dim=1)

    def step_jacobians(self, trace: Trace, layer: int, dtype: torch.dtype | None = None) -> JacobianSequence:
        """ds_t/ds_{t-1} for t = 1..T along ``trace``, leading dims (M, B): the generic autograd path.

        Every cell type here overrides this with its analytic structure; this fallback
        (torch.func.jacrev of :meth:`recurrent_step`, dense (T, M, B, S, S)) serves a user's
        own cell and is the reference the analytic paths are tested against.
        """
        states = trace.stacked_states(layer).detach()
        drive = trace.drives[layer].detach()
        jacobians = [step_jacobians_autograd(self.recurrent_step(layer, cell), states[:-1, cell], drive[:, cell])
                     for cell in range(self.n_cells)]
        return DenseJacobians(torch.stack(jacobians, dim=1).to(dtype or states.dtype))

    def activations(self, trace: Trace, layer: int) -> torch.Tensor:
        """(T, M, B, N) outputs of the cell's nonlinearity whose activity ``active_fraction`` reports."""
        raise NotImplementedError


CELLS: Registry[type[RecurrentStack]] = Registry("cell")


def register_cell(name: str, *, overwrite: bool = False):
    """Class decorator registering a :class:`RecurrentStack` subclass as cell type ``name``."""

    def decorate(cls: type[RecurrentStack]) -> type[RecurrentStack]:
        cls.cell_type = name
        return CELLS.add(name, cls, overwrite=overwrite)

    return decorate


def get_cell(name: str) -> type[RecurrentStack]:
    """The stack class registered as cell type ``name``; an error listing the valid names otherwise."""
    return CELLS.get(name)


def list_cells() -> list[str]:
    """Names of every registered cell type, sorted."""
    return CELLS.names()

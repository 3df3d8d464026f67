"""Lyapunov spectra of models driven by an input batch.

For a recurrent stack (any cell type of :mod:`rnn_dynamics.models`),
:func:`model_lyapunov_spectrum` runs the QR method on the stack's own step Jacobians of
one layer's full state (analytic and never formed as matrices for the built-in cells),
and :func:`model_largest_exponent` is the matching direct simulation (Benettin), which
uses no Jacobian at all. A ``torch.nn`` RNNCell, GRUCell or LSTMCell, or any
``step(state, x) -> state`` of one sample, goes through ``torch.func.jacrev`` step
Jacobians (the generic path, :func:`step_lyapunov_spectrum`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .jacobians import DenseJacobians, step_jacobians_autograd
from .spectra import LyapunovResult, benettin_largest_exponent, qr_lyapunov

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _affine(weight: torch.Tensor, bias: torch.Tensor | None, v: torch.Tensor) -> torch.Tensor:
    return weight @ v if bias is None else weight @ v + bias


def cell_step(cell: nn.Module) -> tuple[StepFn, int]:
    """``(step(state, x) -> state, state size)`` for one sample of a torch.nn recurrent cell.

    The cell's equations are written out from its parameters (as documented for
    torch.nn.RNNCell, GRUCell and LSTMCell), so ``torch.func`` can vmap and
    differentiate them. LSTMCell's state is [h; c] (2N), so it has 2N exponents.
    """
    w_ih, w_hh = cell.weight_ih, cell.weight_hh
    b_ih, b_hh = getattr(cell, "bias_ih", None), getattr(cell, "bias_hh", None)
    n = cell.hidden_size
    if isinstance(cell, nn.RNNCell):
        activation = torch.relu if cell.nonlinearity == "relu" else torch.tanh

        def rnn_step(h, x):
            return activation(_affine(w_ih, b_ih, x) + _affine(w_hh, b_hh, h))

        return rnn_step, n
    if isinstance(cell, nn.GRUCell):
        def gru_step(h, x):
            xr, xz, xn = _affine(w_ih, b_ih, x).split(n)
            hr, hz, hn = _affine(w_hh, b_hh, h).split(n)
            reset, update = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            candidate = torch.tanh(xn + reset * hn)
            return (1 - update) * candidate + update * h

        return gru_step, n
    if isinstance(cell, nn.LSTMCell):
        def lstm_step(state, x):
            h, c = state[:n], state[n:]
            i, f, g, o = (_affine(w_ih, b_ih, x) + _affine(w_hh, b_hh, h)).split(n)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.cat([torch.sigmoid(o) * torch.tanh(c), c])

        return lstm_step, 2 * n
    raise TypeError(f"no step function for {type(cell).__name__}; valid cells: RNNCell, GRUCell, LSTMCell "
                    "(or call step_lyapunov_spectrum with your own step)")


def unroll(step: StepFn, h0: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """States h_0..h_T (T + 1, B, S) of ``step`` over inputs (T, B, I) from h0 (B, S)."""
    batched = torch.func.vmap(step)
    states = [h0]
    for x_t in inputs.unbind(0):
        states.append(batched(states[-1], x_t))
    return torch.stack(states)


def step_lyapunov_spectrum(step: StepFn, h0: torch.Tensor, inputs: torch.Tensor, k: int | None = None,
                           warmup: int = 0, reortho_every: int = 1, generator=None) -> LyapunovResult:
    """Generic path: exponents (B, k) of any one-sample ``step`` via autograd step Jacobians."""
    with torch.no_grad():
        states = unroll(step, h0, inputs)
    jac = step_jacobians_autograd(step, states[:-1], inputs)  # (T, B, S, S)
    return qr_lyapunov(DenseJacobians(jac.to(torch.float64)), k, warmup, reortho_every, generator)


def trace_lyapunov_spectrum(model, trace, *, layer: int = 0, k: int | None = None, warmup: int = 0,
                            reortho_every: int = 1, generator=None) -> LyapunovResult:
    """Exponents (M, B, k) of ``layer``'s full state along an existing ``model.trace(x)``, in float64."""
    return qr_lyapunov(model.step_jacobians(trace, layer, dtype=torch.float64), k, warmup, reortho_every, generator)


def trace_largest_exponent(model, trace, *, layer: int = 0, warmup: int = 0, eps: float = 1e-7,
                           generator=None) -> torch.Tensor:
    """Largest exponent (M, B) of ``layer`` by direct simulation of two nearby trajectories, in float64.

    Both copies see the drive that ``layer`` received along ``trace`` (from the unperturbed
    lower layers), so this measures the same quantity as the QR method on the layer's own
    recurrence.
    """
    params = tuple(p.detach().to(torch.float64) for p in model.recurrent_params(layer))
    drive = trace.drives[layer].detach().to(torch.float64)
    h0 = trace.states[layer][0].detach().to(torch.float64)

    def step(state, t):
        return model.step(params, state, drive[t])[0]

    with torch.no_grad():
        return benettin_largest_exponent(step, h0, drive.shape[0], warmup, eps, generator)


def model_lyapunov_spectrum(model, inputs: torch.Tensor, *, layer: int = 0, k: int | None = None,
                            warmup: int = 0, reortho_every: int = 1, h0: torch.Tensor | None = None,
                            generator=None) -> LyapunovResult:
    """Lyapunov spectrum of ``model`` driven by ``inputs`` (T, B, I), in nats per step.

    A recurrent stack: exponents (M, B, k) of ``layer``'s full state (lower layers are its
    input), from the stack's own step Jacobians. torch.nn RNNCell / GRUCell / LSTMCell:
    (B, k) from h0 (zeros by default) by autograd.
    """
    if hasattr(model, "step_jacobians"):
        with torch.no_grad():
            trace = model.trace(inputs)
        return trace_lyapunov_spectrum(model, trace, layer=layer, k=k, warmup=warmup, reortho_every=reortho_every,
                                       generator=generator)
    step, size = cell_step(model)
    if h0 is None:
        h0 = inputs.new_zeros(inputs.shape[1], size)
    return step_lyapunov_spectrum(step, h0, inputs, k, warmup, reortho_every, generator)


def model_largest_exponent(model, inputs: torch.Tensor, *, layer: int = 0, warmup: int = 0,
                           eps: float = 1e-7, generator=None) -> torch.Tensor:
    """Largest exponent (M, B) of a recurrent stack's ``layer`` driven by ``inputs``, by direct simulation."""
    with torch.no_grad():
        trace = model.trace(inputs)
    return trace_largest_exponent(model, trace, layer=layer, warmup=warmup, eps=eps, generator=generator)

"""Lyapunov spectra of models driven by an input batch.

:func:`model_lyapunov_spectrum` takes a model and inputs: an :class:`ElmanStack` uses its
analytic step Jacobians diag(f'(a_t)) W (never formed as matrices); a ``torch.nn``
RNNCell, GRUCell or LSTMCell, or any ``step(state, x) -> state`` of one sample, uses
``torch.func.jacrev`` step Jacobians (the generic path). :func:`model_largest_exponent`
is the matching direct simulation (Benettin), which uses no Jacobian at all.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .cells import ElmanStack
from .jacobians import DenseJacobians, ElmanJacobians, step_jacobians_autograd
from .nonlinearities import activation
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
        def rnn_step(h, x):
            return activation(cell.nonlinearity, _affine(w_ih, b_ih, x) + _affine(w_hh, b_hh, h))

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


def model_lyapunov_spectrum(model, inputs: torch.Tensor, *, layer: int = 0, k: int | None = None,
                            warmup: int = 0, reortho_every: int = 1, h0: torch.Tensor | None = None,
                            generator=None) -> LyapunovResult:
    """Lyapunov spectrum of ``model`` driven by ``inputs`` (T, B, I), in nats per step.

    ElmanStack: exponents (M, B, k) of ``layer``'s recurrence (lower layers are its input),
    analytic Jacobians. torch.nn RNNCell / GRUCell / LSTMCell: (B, k) from h0 (zeros by
    default) by autograd.
    """
    if isinstance(model, ElmanStack):
        with torch.no_grad():
            preacts = model.trace(inputs).stacked_preacts(layer)
        weight = model.w_hh[layer].detach().to(torch.float64).unsqueeze(1)
        jac = ElmanJacobians.from_preacts(weight, preacts.to(torch.float64), model.nonlinearity)
        return qr_lyapunov(jac, k, warmup, reortho_every, generator)
    step, size = cell_step(model)
    if h0 is None:
        h0 = inputs.new_zeros(inputs.shape[1], size)
    return step_lyapunov_spectrum(step, h0, inputs, k, warmup, reortho_every, generator)


def model_largest_exponent(model: ElmanStack, inputs: torch.Tensor, *, layer: int = 0, warmup: int = 0,
                           eps: float = 1e-7, generator=None) -> torch.Tensor:
    """Largest exponent (M, B) of an ElmanStack layer by direct simulation of two nearby trajectories.

    Both copies see the same drive W_ih x_t + b (from the unperturbed lower layers), so
    this measures the same quantity as the QR method on the layer's own recurrence.
    """
    with torch.no_grad():
        trace = model.trace(inputs)
        lower = inputs if layer == 0 else trace.stacked_states(layer - 1)[1:]
        drive = model.layer_drive(layer, lower).to(torch.float64)
        w_t = model.w_hh[layer].detach().to(torch.float64).transpose(1, 2)
        h0 = torch.zeros(drive.shape[1:], dtype=torch.float64, device=drive.device)

        def step(h, t):
            return activation(model.nonlinearity, torch.baddbmm(drive[t], h, w_t))

        return benettin_largest_exponent(step, h0, drive.shape[0], warmup, eps, generator)

"""Elman cells: h_t = f(W_hh h_{t-1} + W_ih x_t + b), the plain RNN of the paper (IRNN, RNN + tanh/ReLU).

The training path runs :class:`ElmanRecurrence`, an autograd Function with a hand-written
backward; the step Jacobian diag(f'(a_t)) W_hh is kept in that factored form
(:class:`~rnn_dynamics.jacobians.ElmanJacobians`) and never built as a matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..jacobians import ElmanJacobians
from ..kernels import scan_kernel
from ..nonlinearities import Nonlinearity
from .base import RecurrentStack, Trace, cell_major, register_cell


class ElmanRecurrence(torch.autograd.Function):
    """h_t = f(W h_{t-1} + drive_t) for t = 1..T from a constant h_0, with a hand-written backward.

    Autograd on the plain loop records two matmuls, a gradient accumulation and several
    small tensors per step; here the forward writes straight into one state buffer, which the
    backward reads cell-major (M, T + 1, B, N), the backward walks the deltas once
    (dL/dh_{t-1} = (dL/da_t) W) into a cell-major buffer, and dL/dW for all steps is one
    matmul over the buffers. Where :func:`~rnn_dynamics.kernels.scan_kernel` says so (on a
    GPU), both time walks are one Triton kernel launch each instead of a few launches per step,
    and the forward kernel writes the cell-major buffer itself (no transposing copy: at batch 256
    x 32 cells the states are 2.6 GB).
    :meth:`RecurrentStack.trace` keeps the plain loop as the reference this is tested against.
    Inputs: drive (T, M, B, N) (any layout; ``layer_drive``'s is cell-major), initial h_0 (M, B, N),
    weight (M, N, N); returns h_1..h_T as (T, M, B, N), a view of the state buffer, and h_T (M, B, N): a
    ``last`` readout takes its gradient through the latter, so no (T, M, B, N) zero gradient is made.
    """

    @staticmethod
    def forward(ctx, drive: torch.Tensor, initial: torch.Tensor, weight: torch.Tensor, nonlinearity: Nonlinearity):
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero tensor
        steps, m, b, n = drive.shape
        ctx.kernel = scan_kernel("elman", drive, n, nonlinearity.name)
        if ctx.kernel is not None:
            states = drive.new_empty((m, steps + 1, b, n))
            states[:, 0] = initial
            ctx.kernel.forward(drive, states, weight, nonlinearity.name)
        else:
            by_step = drive.new_empty((steps + 1, m, b, n))
            by_step[0] = initial
            w_t = weight.transpose(1, 2)
            for t, drive_t in enumerate(drive.unbind(0)):
                nonlinearity.apply_(torch.baddbmm(drive_t, by_step[t], w_t, out=by_step[t + 1]))
            states = cell_major(by_step, any(ctx.needs_input_grad))
        ctx.save_for_backward(states, weight)
        ctx.nonlinearity = nonlinearity
        return states.transpose(0, 1)[1:], states[:, -1].clone()

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor | None, grad_final: torch.Tensor | None):
        states, weight = ctx.saved_tensors
        m, steps, b, n = states.shape[0], states.shape[1] - 1, states.shape[2], states.shape[3]
        if ctx.kernel is not None:
            grad_pre = ctx.kernel.backward(grad_states, grad_final, states, weight, ctx.nonlinearity.name)
        else:
            dact = ctx.nonlinearity.derivative_from_output(states[:, 1:])  # (M, T, B, N)
            grad_pre = torch.empty_like(dact)
            carry = states.new_zeros((m, b, n)) if grad_final is None else grad_final.clone(
                memory_format=torch.contiguous_format)  # dL/dh_T
            for t in range(steps - 1, -1, -1):
                slot = grad_pre[:, t]
                torch.mul(carry if grad_states is None else grad_states[t] + carry, dact[:, t], out=slot)
                torch.bmm(slot, weight, out=carry)
        grad_weight = torch.bmm(grad_pre.reshape(m, steps * b, n).transpose(1, 2),
                                states[:, :-1].reshape(m, steps * b, n))
        return grad_pre.transpose(0, 1), None, grad_weight, None


@register_cell("elman")
class ElmanStack(RecurrentStack):
    """Elman RNN: h_t = f(W_hh h_{t-1} + W_ih x_t + b) with any registered nonlinearity f."""

    gates = ("recurrent",)
    fused = ElmanRecurrence
    torch_modules = (nn.RNN, nn.RNNCell)

    @classmethod
    def recurrent_seed_parts(cls, seed, spec, nonlinearity, layer, gate):
        return ("recurrent", seed, spec, nonlinearity, layer)  # the spine's seeding, so its numbers stand

    def step(self, params, state, drive):
        (weight,) = params
        pre = drive + torch.matmul(state, weight.mT)
        return self.activation(pre), pre

    def step_jacobians(self, trace: Trace, layer: int, dtype: torch.dtype | None = None) -> ElmanJacobians:
        """J_t = diag(f'(a_t)) W_hh, kept as factors (weight (M, 1, N, N), f' (T, M, B, N))."""
        preacts = trace.stacked_preacts(layer).detach()
        dtype = dtype or preacts.dtype
        weight = self.w_hh[layer].detach().to(dtype).unsqueeze(1)
        return ElmanJacobians(weight, self.activation.derivative(preacts.to(dtype)))

    def activations(self, trace: Trace, layer: int) -> torch.Tensor:
        """The hidden states h_1..h_T themselves."""
        return trace.hidden(layer)[1:]

"""Elman cells: h_t = f(W_hh h_{t-1} + W_ih x_t + b), the plain RNN of the paper (IRNN, RNN + tanh/ReLU).

The training path runs :class:`ElmanRecurrence`, an autograd Function with a hand-written
backward; the step Jacobian diag(f'(a_t)) W_hh is kept in that factored form
(:class:`~rnn_dynamics.jacobians.ElmanJacobians`) and never built as a matrix.
"""

from __future__ import annotations

import torch

from ..jacobians import ElmanJacobians
from ..kernels import scan_kernel
from ..nonlinearities import Nonlinearity
from .base import RecurrentStack, Trace, register_cell


class ElmanRecurrence(torch.autograd.Function):
    """h_t = f(W h_{t-1} + drive_t) for t = 1..T from a constant h_0, with a hand-written backward.

    Autograd on the plain loop records two matmuls, a gradient accumulation and several
    small tensors per step; here the forward writes straight into one time-major state
    buffer (each step a contiguous slot), the backward walks the deltas once
    (dL/dh_{t-1} = (dL/da_t) W) into a cell-major buffer, and dL/dW for all steps is one
    matmul over the buffers. Where :func:`~rnn_dynamics.kernels.scan_kernel` says so (on a
    GPU), both time walks are one Triton kernel launch each instead of a few launches per step.
    :meth:`RecurrentStack.trace` keeps the plain loop as the reference this is tested against.
    Inputs: drive (T, M, B, N), initial h_0 (M, B, N), weight (M, N, N); returns h_1..h_T as
    (T, M, B, N) and h_T (no gradient).
    """

    @staticmethod
    def forward(ctx, drive: torch.Tensor, initial: torch.Tensor, weight: torch.Tensor, nonlinearity: Nonlinearity):
        steps = drive.shape[0]
        states = drive.new_empty((steps + 1, *drive.shape[1:]))
        states[0] = initial
        ctx.kernel = scan_kernel("elman", drive, weight.shape[-1], nonlinearity.name)
        if ctx.kernel is not None:
            ctx.kernel.forward(drive, states, weight, nonlinearity.name)
        else:
            w_t = weight.transpose(1, 2)
            for t, drive_t in enumerate(drive.unbind(0)):
                nonlinearity.apply_(torch.baddbmm(drive_t, states[t], w_t, out=states[t + 1]))
        if any(ctx.needs_input_grad):  # evaluation under no_grad skips the cell-major copy
            ctx.save_for_backward(states.transpose(0, 1).contiguous(), weight)  # cell-major: dW needs no copy
        ctx.nonlinearity = nonlinearity
        final = states[-1].clone()
        ctx.mark_non_differentiable(final)
        return states[1:], final

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor, grad_final: torch.Tensor):
        states, weight = ctx.saved_tensors
        steps, m, b, n = grad_states.shape
        if ctx.kernel is not None:
            grad_pre = ctx.kernel.backward(grad_states, states, weight, ctx.nonlinearity.name)
        else:
            dact = ctx.nonlinearity.derivative_from_output(states[:, 1:])  # (M, T, B, N)
            grad_pre = torch.empty_like(dact)
            carry = torch.zeros_like(grad_states[0])
            for t in range(steps - 1, -1, -1):
                slot = grad_pre[:, t]
                torch.mul(grad_states[t] + carry, dact[:, t], out=slot)
                torch.bmm(slot, weight, out=carry)
        grad_weight = torch.bmm(grad_pre.reshape(m, steps * b, n).transpose(1, 2),
                                states[:, :-1].reshape(m, steps * b, n))
        return grad_pre.transpose(0, 1), None, grad_weight, None


@register_cell("elman")
class ElmanStack(RecurrentStack):
    """Elman RNN: h_t = f(W_hh h_{t-1} + W_ih x_t + b) with any registered nonlinearity f."""

    gates = ("recurrent",)
    fused = ElmanRecurrence

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

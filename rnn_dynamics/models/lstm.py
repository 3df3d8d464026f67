"""LSTM cells (Hochreiter & Schmidhuber 1997, with forget gates, Gers et al. 2000): the paper's LSTM.

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o),  g = phi(a_g),  a = W_hh h_{t-1} + W_ih x_t + b
    c_t = f * c_{t-1} + i * g,  h_t = o * phi(c_t)

phi is the cell's nonlinearity (tanh is the standard LSTM; relu is allowed). The state is
(h, c), 2N units, so the step Jacobian is 2N x 2N and there are 2N Lyapunov exponents.
The recurrent blocks are stored in the order input, forget, output, candidate.
"""

from __future__ import annotations

import torch
from torch import nn

from ..jacobians import GatedJacobians
from ..kernels import scan_kernel
from ..nonlinearities import Nonlinearity
from ..registry import Option
from .base import BACKWARD_CHUNK, RecurrentStack, Trace, cell_major, register_cell


class LSTMRecurrence(torch.autograd.Function):
    """The LSTM recurrence over T steps from constant initial states, with a hand-written backward.

    Inputs: drive (T, M, B, 4N) (gates in the order i, f, o, g), initial (h_0, c_0) as
    (M, B, 2N), weight (M, 4N, N); returns h_1..h_T as (T, M, B, N) and (h_T, c_T) as
    (M, B, 2N), whose gradient seeds the backward walk. The forward writes gate activations and cell
    states into time-major buffers and h cell-major (as dL/dW_hh and a layer above read it); the
    backward computes every per-step coefficient in bulk first, so that its time loop is a handful of
    ops per step, and dL/dW for all steps is one matmul. Where :func:`~rnn_dynamics.kernels.scan_kernel`
    says so (on a GPU), each time walk is one Triton kernel launch instead. Tested against autograd
    through :meth:`RecurrentStack.trace` and gradcheck.
    """

    @staticmethod
    def forward(ctx, drive: torch.Tensor, initial: torch.Tensor, weight: torch.Tensor, nonlinearity: Nonlinearity):
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero tensor
        steps, m, b, four_n = drive.shape
        n = four_n // 4
        cell = drive.new_empty((steps + 1, m, b, n))
        cell[0] = initial[..., n:]
        gates = torch.empty_like(drive, memory_format=torch.contiguous_format)  # drive may be cell-major
        ctx.kernel = scan_kernel("lstm", drive, n, nonlinearity.name)
        if ctx.kernel is not None:
            hidden = drive.new_empty((m, steps + 1, b, n))  # cell-major
            hidden[:, 0] = initial[..., :n]
            ctx.kernel.forward(drive, hidden, cell, gates, weight, nonlinearity.name)
        else:
            by_step = drive.new_empty((steps + 1, m, b, n))
            by_step[0] = initial[..., :n]
            w_t = weight.transpose(1, 2)
            for t, drive_t in enumerate(drive.unbind(0)):
                act = torch.baddbmm(drive_t, by_step[t], w_t, out=gates[t])
                act[..., :3 * n].sigmoid_()
                nonlinearity.apply_(act[..., 3 * n:])
                torch.mul(act[..., n:2 * n], cell[t], out=cell[t + 1])
                cell[t + 1].addcmul_(act[..., :n], act[..., 3 * n:])
                torch.mul(act[..., 2 * n:3 * n], nonlinearity(cell[t + 1]), out=by_step[t + 1])
            hidden = cell_major(by_step, any(ctx.needs_input_grad))
        ctx.save_for_backward(hidden, cell, gates, weight)
        ctx.nonlinearity = nonlinearity
        return hidden.transpose(0, 1)[1:], torch.cat([hidden[:, -1], cell[-1]], dim=-1)

    @staticmethod
    def backward(ctx, grad_hidden: torch.Tensor | None, grad_final: torch.Tensor | None):
        hidden, cell, gates, weight = ctx.saved_tensors
        phi = ctx.nonlinearity
        m, steps, b, n = hidden.shape[0], hidden.shape[1] - 1, hidden.shape[2], hidden.shape[3]
        if ctx.kernel is not None:
            grad_pre = ctx.kernel.backward(grad_hidden, grad_final, cell, gates, weight, phi.name)
        else:
            grad_pre = _loop_backward(grad_hidden, grad_final, cell, gates, weight, phi)
        grad_weight = torch.bmm(grad_pre.transpose(0, 1).reshape(m, steps * b, 4 * n).transpose(1, 2),
                                hidden[:, :-1].reshape(m, steps * b, n))
        return grad_pre, None, grad_weight, None


def _loop_backward(grad_hidden, grad_final, cell, gates, weight, phi: Nonlinearity) -> torch.Tensor:
    """dL/da_t (T, M, B, 4N) walked back step by step (the path where no scan kernel runs) from dL/dh_t (None:
    no step's output used) and dL/d(h_T, c_T) (None: unused), written cell-major like the kernel's, so that
    dL/dW_hh and the drive's gradient read it without a transposing copy."""
    steps, m, b, four_n = gates.shape
    n = four_n // 4
    forget = gates[..., n:2 * n]
    grad_pre = gates.new_empty((m, steps, b, 4 * n))
    final = gates.new_zeros((m, b, 2 * n)) if grad_final is None else grad_final
    carry_h = final[..., :n]  # dL/dh_T (only read), dL/dc_T (written into: a copy)
    carry_c = final[..., n:].clone(memory_format=torch.contiguous_format)
    for stop in range(steps, 0, -BACKWARD_CHUNK):
        start = max(0, stop - BACKWARD_CHUNK)
        coeff, carry_coeff = _backward_coefficients(gates[start:stop], cell[start:stop + 1], phi)
        for t in range(stop - 1, start - 1, -1):
            k = t - start
            d_h = carry_h if grad_hidden is None else grad_hidden[t] + carry_h
            d_c = torch.addcmul(carry_c, d_h, carry_coeff[k])  # dL/dc_t
            slot = grad_pre[:, t].view(m, b, 4, n)
            torch.mul(coeff[k], d_c.unsqueeze(-2), out=slot)
            torch.mul(coeff[k, :, :, 2], d_h, out=slot[:, :, 2])  # the output gate is driven by dL/dh_t
            torch.mul(d_c, forget[t], out=carry_c)
            carry_h = torch.bmm(grad_pre[:, t], weight)
    return grad_pre.transpose(0, 1)


def _backward_coefficients(gates: torch.Tensor, cell: torch.Tensor, phi: Nonlinearity):
    """For steps t of a chunk: dL/da_t = [dc, dc, dh, dc] * coeff_t and dL/dc_t += dh * carry_t.

    ``gates`` (K, M, B, 4N) holds i, f, o, g; ``cell`` (K + 1, M, B, N) holds c_{t-1}..c_t.
    coeff = [g s'(a_i), c_{t-1} s'(a_f), phi(c_t) s'(a_o), i phi'(a_g)], carry = o phi'(c_t).
    """
    steps, m, b, four_n = gates.shape
    n = four_n // 4
    squashed = phi(cell[1:])
    derivative = gates * (1 - gates)
    derivative[..., 3 * n:] = phi.derivative_from_output(gates[..., 3 * n:])
    other = torch.cat([gates[..., 3 * n:], cell[:-1], squashed, gates[..., :n]], dim=-1)
    coeff = other.mul_(derivative).view(steps, m, b, 4, n)
    return coeff, gates[..., 2 * n:3 * n] * phi.derivative_from_output(squashed)


@register_cell("lstm")
class LSTMStack(RecurrentStack):
    """LSTM with forget gate: state (h, c); phi (tanh by default, or relu) on the candidate and on c."""

    gates = ("input", "forget", "output", "candidate")
    state_parts = ("h", "c")
    nonlinearities = ("tanh", "relu")
    options = {"forget_bias": Option(1.0, "initial bias of the LSTM forget gate (Gers et al. 2000)")}
    fused = LSTMRecurrence
    torch_modules = (nn.LSTM, nn.LSTMCell)

    def load_torch_layer(self, cell, layer, weight_ih, weight_hh, bias_ih, bias_hh):
        """torch.nn.LSTM keeps its gates as i, f, g, o; the stack as i, f, o, g."""
        def reordered(tensor):
            return tensor.reshape(4, self.hidden_size, *tensor.shape[1:])[[0, 1, 3, 2]].flatten(0, 1)

        super().load_torch_layer(cell, layer, *map(reordered, (weight_ih, weight_hh, bias_ih, bias_hh)))

    def initial_bias(self, bias: float) -> torch.Tensor:
        """``bias`` on every gate but the forget gate, which starts at the ``forget_bias`` option."""
        n = self.hidden_size
        values = torch.full((4 * n,), float(bias))
        values[n:2 * n] = self.settings["forget_bias"]
        return values

    def step(self, params, state, drive):
        (weight,) = params
        n = weight.shape[-1]
        h, c = state[..., :n], state[..., n:]
        pre = drive + torch.matmul(h, weight.mT)
        i, f, o = torch.sigmoid(pre[..., :3 * n]).split(n, dim=-1)
        c = f * c + i * self.activation(pre[..., 3 * n:])
        return torch.cat([o * self.activation(c), c], dim=-1), pre

    def step_jacobians(self, trace: Trace, layer: int, dtype: torch.dtype | None = None) -> GatedJacobians:
        """d(h_t, c_t)/d(h_{t-1}, c_{t-1}) in factored form.

        With gamma = dc_t/da (i: g s'(a_i), f: c_{t-1} s'(a_f), g: i phi'(a_g), o: 0) and
        k = o phi'(c_t): dc_t/dh_{t-1} = sum_x diag(gamma_x) W_x, dc_t/dc_{t-1} = diag(f),
        dh_t/dh_{t-1} = diag(phi(c_t) s'(a_o)) W_o + diag(k) dc_t/dh_{t-1}, dh_t/dc_{t-1} = diag(k f).
        """
        phi, n = self.activation, self.hidden_size
        states = trace.stacked_states(layer).detach()
        dtype = dtype or states.dtype
        states, pre = states.to(dtype), trace.stacked_preacts(layer).detach().to(dtype)
        i, f, o = torch.sigmoid(pre[..., :3 * n]).split(n, dim=-1)
        g = phi(pre[..., 3 * n:])
        c_prev, c = states[:-1, ..., n:], states[1:, ..., n:]
        squashed = phi(c)
        k = o * phi.derivative_from_output(squashed)
        gamma = torch.stack([g * i * (1 - i), c_prev * f * (1 - f), torch.zeros_like(o),
                             i * phi.derivative_from_output(g)], dim=-2)  # (T, M, B, 4, N)
        eta_h = gamma * k.unsqueeze(-2)
        eta_h[..., 2, :] = squashed * o * (1 - o)
        zero = torch.zeros_like(f)
        diagonal = torch.stack([torch.stack([zero, k * f], dim=-2), torch.stack([zero, f], dim=-2)], dim=-3)
        weight = self.w_hh[layer].detach().to(dtype).unsqueeze(1)
        return GatedJacobians(weight, torch.stack([eta_h, gamma], dim=-3), diagonal)

    def activations(self, trace: Trace, layer: int) -> torch.Tensor:
        """The candidate g_t = phi(a_g)."""
        return self.activation(trace.stacked_preacts(layer)[..., 3 * self.hidden_size:])

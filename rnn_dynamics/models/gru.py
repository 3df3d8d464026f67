"""GRU cells (Cho et al. 2014), in torch.nn.GRU's form:

    r, z = sigmoid(a_r), sigmoid(a_z),  a_{r,z} = W_{r,z} h_{t-1} + (W_ih x_t + b)_{r,z}
    n = phi(a_n),  a_n = (W_ih x_t + b)_n + r * (W_n h_{t-1} + b_hn)
    h_t = (1 - z) * n + z * h_{t-1}

phi is the cell's nonlinearity (tanh standard; relu allowed). The recurrent blocks are
stored in the order reset, update, candidate; ``b_hn`` is the recurrent bias inside the
reset product (it starts at 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ..jacobians import GatedJacobians
from ..kernels import scan_kernel
from ..nonlinearities import Nonlinearity
from .base import BACKWARD_CHUNK, RecurrentStack, Trace, cell_major, register_cell


class GRURecurrence(torch.autograd.Function):
    """The GRU recurrence over T steps from a constant h_0, with a hand-written backward.

    Inputs: drive (T, M, B, 3N), initial h_0 (M, B, N), weight (M, 3N, N), b_hn (M, 1, N);
    returns h_1..h_T as (T, M, B, N), a view of the cell-major h that the backward, dL/dW_hh and a layer
    above read, and h_T, whose gradient seeds the backward walk. The backward computes the per-step
    coefficients in bulk first: dL/d(drive_t) and dL/d(W h_{t-1}) are then one multiplication each by
    dL/dh_t. Where :func:`~rnn_dynamics.kernels.scan_kernel` says so (on a GPU),
    each time walk is one Triton kernel launch instead.
    """

    @staticmethod
    def forward(ctx, drive, initial, weight, b_hn, nonlinearity: Nonlinearity):
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero tensor
        steps, m, b, three_n = drive.shape
        n = three_n // 3
        gates = torch.empty_like(drive, memory_format=torch.contiguous_format)  # drive may be cell-major
        from_h = torch.empty_like(gates)
        ctx.kernel = scan_kernel("gru", drive, n, nonlinearity.name)
        if ctx.kernel is not None:
            hidden = drive.new_empty((m, steps + 1, b, n))  # cell-major
            hidden[:, 0] = initial
            ctx.kernel.forward(drive, b_hn, hidden, gates, from_h, weight, nonlinearity.name)
        else:
            by_step = drive.new_empty((steps + 1, m, b, n))
            by_step[0] = initial
            recurrent_bias = torch.cat([b_hn.new_zeros(m, 1, 2 * n), b_hn], dim=-1)
            w_t = weight.transpose(1, 2)
            for t, drive_t in enumerate(drive.unbind(0)):
                gh = torch.baddbmm(recurrent_bias, by_step[t], w_t, out=from_h[t])
                act = gates[t]
                torch.add(drive_t[..., :2 * n], gh[..., :2 * n], out=act[..., :2 * n]).sigmoid_()
                candidate = torch.addcmul(drive_t[..., 2 * n:], act[..., :n], gh[..., 2 * n:],
                                          out=act[..., 2 * n:])
                nonlinearity.apply_(candidate)
                torch.sub(by_step[t], candidate, out=by_step[t + 1]).mul_(act[..., n:2 * n]).add_(candidate)
            hidden = cell_major(by_step, any(ctx.needs_input_grad))
        ctx.save_for_backward(hidden, gates, from_h, weight)
        ctx.nonlinearity = nonlinearity
        return hidden.transpose(0, 1)[1:], hidden[:, -1].clone()

    @staticmethod
    def backward(ctx, grad_hidden, grad_final):
        hidden, gates, from_h, weight = ctx.saved_tensors
        m, steps, b, n = hidden.shape[0], hidden.shape[1] - 1, hidden.shape[2], hidden.shape[3]
        if ctx.kernel is not None:
            grad_drive, grad_from_h = ctx.kernel.backward(grad_hidden, grad_final, hidden, gates, from_h, weight,
                                                          ctx.nonlinearity.name)
        else:
            grad_drive, grad_from_h = _loop_backward(grad_hidden, grad_final, hidden, gates, from_h, weight,
                                                     ctx.nonlinearity)
        grad_weight = torch.bmm(grad_from_h.transpose(0, 1).reshape(m, steps * b, 3 * n).transpose(1, 2),
                                hidden[:, :-1].reshape(m, steps * b, n))
        grad_b_hn = grad_from_h[..., 2 * n:].sum(dim=(0, 2)).unsqueeze(1)
        return grad_drive, None, grad_weight, grad_b_hn, None


def _loop_backward(grad_hidden, grad_final, hidden, gates, from_h, weight, phi: Nonlinearity):
    """dL/d(drive_t) and dL/d(W h_{t-1} + b), (T, M, B, 3N) each, walked back step by step (no scan kernel)
    from dL/dh_t (None: no step's output used), dL/dh_T (None: unused) and the cell-major h, written
    cell-major like the kernel's, so that dL/dW_hh and the drive's gradient read them without copies."""
    steps, m, b, three_n = gates.shape
    n = three_n // 3
    update = gates[..., n:2 * n]
    grad_drive, grad_from_h = (gates.new_empty((m, steps, b, 3 * n)) for _ in range(2))
    carry = gates.new_zeros((m, b, n)) if grad_final is None else grad_final  # dL/dh_T (only read)
    for stop in range(steps, 0, -BACKWARD_CHUNK):
        start = max(0, stop - BACKWARD_CHUNK)
        drive_coeff, from_h_coeff = _backward_coefficients(gates[start:stop], from_h[start:stop],
                                                           hidden[:, start:stop].transpose(0, 1), phi)
        for t in range(stop - 1, start - 1, -1):
            k = t - start
            d_h = (carry if grad_hidden is None else grad_hidden[t] + carry).unsqueeze(-2)
            torch.mul(drive_coeff[k], d_h, out=grad_drive[:, t].view(m, b, 3, n))
            torch.mul(from_h_coeff[k], d_h, out=grad_from_h[:, t].view(m, b, 3, n))
            carry = torch.baddbmm(d_h.squeeze(-2) * update[t], grad_from_h[:, t], weight)
    return grad_drive.transpose(0, 1), grad_from_h.transpose(0, 1)


def _backward_coefficients(gates, from_h, hidden_prev, phi: Nonlinearity):
    """For steps t of a chunk: dL/d(drive_t) = dL/dh_t * drive_coeff and dL/d(W h_{t-1} + b) = dL/dh_t * from_h_coeff.

    With c_n = (1 - z) phi'(a_n): drive_coeff = [c_n (W_n h + b_hn) s'(a_r), (h_{t-1} - n) s'(a_z), c_n] and
    from_h_coeff the same with c_n r in the candidate slot.
    """
    steps, m, b, three_n = gates.shape
    n = three_n // 3
    r, z, cand = gates.split(n, dim=-1)
    c_n = (1 - z) * phi.derivative_from_output(cand)
    c_r = c_n * from_h[..., 2 * n:] * r * (1 - r)
    c_z = (hidden_prev - cand) * z * (1 - z)
    return torch.stack([c_r, c_z, c_n], dim=-2), torch.stack([c_r, c_z, c_n * r], dim=-2)


@register_cell("gru")
class GRUStack(RecurrentStack):
    """GRU as in torch.nn.GRU: reset and update gates, phi (tanh by default, or relu) on the candidate."""

    gates = ("reset", "update", "candidate")
    nonlinearities = ("tanh", "relu")
    fused = GRURecurrence
    torch_modules = (nn.GRU, nn.GRUCell)

    def load_torch_layer(self, cell, layer, weight_ih, weight_hh, bias_ih, bias_hh):
        """torch.nn.GRU's recurrent bias of the candidate, b_hn, sits inside the reset gate's product: the stack
        keeps it apart (``b_hn``); those of the reset and update gates only add."""
        n = self.hidden_size
        super().load_torch_layer(cell, layer, weight_ih, weight_hh, bias_ih,
                                 torch.cat([bias_hh[:2 * n], torch.zeros_like(bias_hh[2 * n:])]))
        with torch.no_grad():
            self.b_hn[layer][cell, 0].copy_(bias_hh[2 * n:])

    def __init__(self, n_cells, input_size, hidden_size, output_size, nonlinearity="tanh", num_layers=1,
                 readout="last", **options):
        super().__init__(n_cells, input_size, hidden_size, output_size, nonlinearity, num_layers, readout, **options)
        self.b_hn = nn.ParameterList(nn.Parameter(torch.zeros(n_cells, 1, hidden_size)) for _ in range(num_layers))

    @classmethod
    def parameter_count(cls, input_size, hidden_size, output_size, num_layers):
        return super().parameter_count(input_size, hidden_size, output_size, num_layers) + num_layers * hidden_size

    def recurrent_params(self, layer):
        return self.w_hh[layer], self.b_hn[layer]

    def step(self, params, state, drive):
        weight, b_hn = params
        n = weight.shape[-1]
        if state.dim() == 1:  # one cell and one sample: b_hn is (1, N)
            b_hn = b_hn.squeeze(0)
        gh = torch.matmul(state, weight.mT)
        reset_update = drive[..., :2 * n] + gh[..., :2 * n]
        r, z = torch.sigmoid(reset_update).split(n, dim=-1)
        pre_n = drive[..., 2 * n:] + r * (gh[..., 2 * n:] + b_hn)
        cand = self.activation(pre_n)
        return cand + z * (state - cand), torch.cat([reset_update, pre_n], dim=-1)

    def step_jacobians(self, trace: Trace, layer: int, dtype: torch.dtype | None = None) -> GatedJacobians:
        """dh_t/dh_{t-1} = diag(z) + diag(eta_r) W_r + diag(eta_z) W_z + diag(eta_n) W_n with
        eta_n = (1 - z) phi' r, eta_r = (1 - z) phi' (W_n h_{t-1} + b_hn) s'(a_r), eta_z = (h_{t-1} - n) s'(a_z)."""
        n, phi = self.hidden_size, self.activation
        states = trace.stacked_states(layer).detach()
        dtype = dtype or states.dtype
        states, pre = states.to(dtype), trace.stacked_preacts(layer).detach().to(dtype)
        weight = self.w_hh[layer].detach().to(dtype)
        r, z = torch.sigmoid(pre[..., :2 * n]).split(n, dim=-1)
        cand = phi(pre[..., 2 * n:])
        h_prev = states[:-1]
        from_h_n = torch.matmul(h_prev, weight[:, 2 * n:].mT) + self.b_hn[layer].detach().to(dtype)
        c_n = (1 - z) * phi.derivative_from_output(cand)
        eta = torch.stack([c_n * from_h_n * r * (1 - r), (h_prev - cand) * z * (1 - z), c_n * r], dim=-2)
        return GatedJacobians(weight.unsqueeze(1), eta.unsqueeze(-3), z.unsqueeze(-2).unsqueeze(-2))

    def activations(self, trace: Trace, layer: int) -> torch.Tensor:
        """The candidate n_t = phi(a_n)."""
        return self.activation(trace.stacked_preacts(layer)[..., 2 * self.hidden_size:])

"""The LSTM recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences and loops over time inside the kernel.
The four N x N gate blocks (input, forget, output, candidate, as in :mod:`rnn_dynamics.models.lstm`)
are read at every step from cache rather than held in registers (4 blocks of up to 128 x 128 would
not fit). The buffers are those of :class:`LSTMRecurrence`'s loop: h and c (T + 1, M, B, N), the
gate activations (T, M, B, 4N); dL/dW_hh stays one matmul in torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS, sigmoid
from .launch import BLOCK_B, block_size, check_buffers, grid_for, program_tile, times_block, warps_for


@triton.jit
def _forward(drive_ptr, hidden_ptr, cell_ptr, gates_ptr, weight_ptr, steps, n_cells, batch, n,
             PHI: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """i, f, o = sigmoid(a), g = phi(a), a = h W^T + drive; c' = f c + i g; h' = o phi(c'), for t = 0..T-1."""
    cell, rows, units, block_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    weight_at = weight_ptr + cell * 4 * n * n
    state_slot = (cell * batch + rows[:, None]) * n + units[None, :]
    gate_slot = (cell * batch + rows[:, None]) * 4 * n + units[None, :]
    hidden_at, cell_at = hidden_ptr + state_slot, cell_ptr + state_slot
    drive_at, gates_at = drive_ptr + gate_slot, gates_ptr + gate_slot
    h = tl.load(hidden_at, mask=tile_ok, other=0.0)
    c = tl.load(cell_at, mask=tile_ok, other=0.0)
    for _ in range(steps):
        i = sigmoid(times_block(h, weight_at, 0, n, units, block_ok, True)
                    + tl.load(drive_at, mask=tile_ok, other=0.0)).to(h.dtype)
        f = sigmoid(times_block(h, weight_at, 1, n, units, block_ok, True)
                    + tl.load(drive_at + n, mask=tile_ok, other=0.0)).to(h.dtype)
        o = sigmoid(times_block(h, weight_at, 2, n, units, block_ok, True)
                    + tl.load(drive_at + 2 * n, mask=tile_ok, other=0.0)).to(h.dtype)
        g = PHI(times_block(h, weight_at, 3, n, units, block_ok, True)
                + tl.load(drive_at + 3 * n, mask=tile_ok, other=0.0)).to(h.dtype)
        c = f * c + i * g
        h = (o * PHI(c)).to(h.dtype)
        tl.store(gates_at, i, mask=tile_ok)
        tl.store(gates_at + n, f, mask=tile_ok)
        tl.store(gates_at + 2 * n, o, mask=tile_ok)
        tl.store(gates_at + 3 * n, g, mask=tile_ok)
        hidden_at += n_cells * batch * n
        cell_at += n_cells * batch * n
        tl.store(hidden_at, h, mask=tile_ok)
        tl.store(cell_at, c, mask=tile_ok)
        drive_at += n_cells * batch * 4 * n
        gates_at += n_cells * batch * 4 * n


@triton.jit
def _backward(grad_ptr, cell_ptr, gates_ptr, grad_pre_ptr, weight_ptr, steps, n_cells, batch, n,
              PHI: tl.constexpr, DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """dL/da_t for t = T - 1..0 from dL/dh_t, carrying dL/dh and dL/dc back a step at a time.

    Every pointer arrives at its tensor's last step: grad[T - 1] (T, M, B, N), cell[T] (T + 1, M, B, N),
    gates[T - 1] and grad_pre[T - 1] (T, M, B, 4N).
    """
    cell, rows, units, block_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    weight_at = weight_ptr + cell * 4 * n * n
    state_slot = (cell * batch + rows[:, None]) * n + units[None, :]
    gate_slot = (cell * batch + rows[:, None]) * 4 * n + units[None, :]
    grad_at, cell_at = grad_ptr + state_slot, cell_ptr + state_slot
    gates_at, grad_pre_at = gates_ptr + gate_slot, grad_pre_ptr + gate_slot
    carry_h = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    carry_c = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    for _ in range(steps):
        i = tl.load(gates_at, mask=tile_ok, other=0.0)
        f = tl.load(gates_at + n, mask=tile_ok, other=0.0)
        o = tl.load(gates_at + 2 * n, mask=tile_ok, other=0.0)
        g = tl.load(gates_at + 3 * n, mask=tile_ok, other=0.0)
        c = tl.load(cell_at, mask=tile_ok, other=0.0)
        c_before = tl.load(cell_at - n_cells * batch * n, mask=tile_ok, other=0.0)
        squashed = PHI(c).to(c.dtype)
        d_h = tl.load(grad_at, mask=tile_ok, other=0.0) + carry_h
        d_c = (carry_c + d_h * o * DERIVATIVE(squashed)).to(c.dtype)
        d_i = (d_c * g * i * (1.0 - i)).to(c.dtype)
        d_f = (d_c * c_before * f * (1.0 - f)).to(c.dtype)
        d_o = (d_h * squashed * o * (1.0 - o)).to(c.dtype)
        d_g = (d_c * i * DERIVATIVE(g)).to(c.dtype)
        tl.store(grad_pre_at, d_i, mask=tile_ok)
        tl.store(grad_pre_at + n, d_f, mask=tile_ok)
        tl.store(grad_pre_at + 2 * n, d_o, mask=tile_ok)
        tl.store(grad_pre_at + 3 * n, d_g, mask=tile_ok)
        carry_c = d_c * f
        carry_h = (times_block(d_i, weight_at, 0, n, units, block_ok, False)
                   + times_block(d_f, weight_at, 1, n, units, block_ok, False)
                   + times_block(d_o, weight_at, 2, n, units, block_ok, False)
                   + times_block(d_g, weight_at, 3, n, units, block_ok, False)).to(c.dtype)
        grad_at -= n_cells * batch * n
        cell_at -= n_cells * batch * n
        gates_at -= n_cells * batch * 4 * n
        grad_pre_at -= n_cells * batch * 4 * n


def forward(drive: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, gates: torch.Tensor,
            weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill hidden[1:], cell[1:] (T + 1, M, B, N) from their step 0 and gates (T, M, B, 4N)."""
    steps, m, b, four_n = drive.shape
    check_buffers(hidden=hidden, cell=cell, gates=gates)
    block_n = block_size(four_n // 4)
    _forward[grid_for(m, b)](drive.contiguous(), hidden, cell, gates, weight.contiguous(), steps, m, b, four_n // 4,
                             PHI=KERNEL_ACTIVATIONS.get(nonlinearity).forward, BLOCK_B=BLOCK_B, BLOCK_N=block_n,
                             num_warps=warps_for(block_n))


def backward(grad_hidden: torch.Tensor, cell: torch.Tensor, gates: torch.Tensor, weight: torch.Tensor,
             nonlinearity: str) -> torch.Tensor:
    """dL/da_t (T, M, B, 4N) from dL/dh_t (T, M, B, N) and the forward's cell states and gate activations."""
    steps, m, b, n = grad_hidden.shape
    check_buffers(cell=cell, gates=gates)
    grad_pre = torch.empty_like(gates)
    grad_hidden = grad_hidden.contiguous()
    activation = KERNEL_ACTIVATIONS.get(nonlinearity)
    block_n = block_size(n)
    _backward[grid_for(m, b)](grad_hidden[-1], cell[-1], gates[-1], grad_pre[-1], weight.contiguous(), steps, m, b,
                              n, PHI=activation.forward, DERIVATIVE=activation.derivative, BLOCK_B=BLOCK_B,
                              BLOCK_N=block_n, num_warps=warps_for(block_n))
    return grad_pre

"""The Elman recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences and loops over time inside the kernel,
so a step costs no launch (as in cuDNN's persistent RNN kernels): the state tile it writes is read
back from cache for the next step's product with the cell's N x N matrix (also read from cache, 16
units at a time, see :func:`~rnn_dynamics.kernels.launch.rows_times_block`). Everything that is not
sequential in time (the input drive W_ih x_t + b of every step, dL/dW_hh as one matmul over the saved
states) stays in torch, in :class:`ElmanRecurrence`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS
from .launch import check_buffers, geometry, grid_for, program_tile, rows_times_block


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _forward(drive_ptr, states_ptr, weight_ptr, steps, n_cells, batch, n,
             ACTIVATION: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
             PRECISION: tl.constexpr):
    """states[t + 1] = f(states[t] W^T + drive[t]); drive (T, M, B, N), states (T + 1, M, B, N), weight (M, N, N)."""
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    weight_at = weight_ptr + cell * n * n
    step = n_cells * batch * n
    rows_at = states_ptr + sequence * n  # h_t, as rows for the product
    drive_at = drive_ptr + sequence * n + units
    for _ in range(steps):
        pre = rows_times_block(rows_at, row_ok, weight_at, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, True, PRECISION)
        h = ACTIVATION(pre + tl.load(drive_at, mask=tile_ok, other=0.0)).to(pre.dtype)
        rows_at += step
        tl.store(rows_at + units, h, mask=tile_ok)
        tl.debug_barrier()  # h_{t+1} complete before any thread reads it for the next product
        drive_at += step


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _backward(grad_ptr, states_ptr, grad_pre_ptr, weight_ptr, steps, n_cells, batch, n,
              DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
             PRECISION: tl.constexpr):
    """grad_pre[t] = (grad[t] + grad_pre[t + 1] W) * f'(states[t + 1]), t = T - 1 .. 0.

    grad (T, M, B, N) time-major; states (M, T + 1, B, N) and grad_pre (M, T, B, N) cell-major; each
    pointer is that of its tensor's last step (grad[T - 1], states[:, T], grad_pre[:, T - 1]).
    """
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    weight_at = weight_ptr + cell * n * n
    within = (sequence - cell * batch) * n  # row offset inside one cell's (B, N) slice
    grad_at = grad_ptr + sequence * n + units
    state_at = states_ptr + cell * (steps + 1) * batch * n + within + units
    pre_rows_at = grad_pre_ptr + cell * steps * batch * n + within
    carry = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    for _ in range(steps):
        out = tl.load(state_at, mask=tile_ok, other=0.0)
        delta = ((tl.load(grad_at, mask=tile_ok, other=0.0) + carry) * DERIVATIVE(out)).to(carry.dtype)
        tl.store(pre_rows_at + units, delta, mask=tile_ok)
        tl.debug_barrier()
        carry = rows_times_block(pre_rows_at, row_ok, weight_at, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, False, PRECISION)
        grad_at -= n_cells * batch * n
        state_at -= batch * n
        pre_rows_at -= batch * n


def forward(drive: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill ``states[1:]`` (T + 1, M, B, N) from ``states[0]``: h_t = f(W h_{t-1} + drive_t)."""
    steps, m, b, n = drive.shape
    check_buffers(states=states)
    _forward[grid_for(m, b)](drive.contiguous(), states, weight.contiguous(), steps, m, b, n,
                             ACTIVATION=KERNEL_ACTIVATIONS.get(nonlinearity).forward, **geometry(n, weight.dtype))


def backward(grad_states: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """dL/da_t for every t, cell-major (M, T, B, N), from dL/dh_t (T, M, B, N) and the cell-major states."""
    steps, m, b, n = grad_states.shape
    check_buffers(states=states)
    grad_pre = grad_states.new_empty((m, steps, b, n))
    grad_states = grad_states.contiguous()
    _backward[grid_for(m, b)](grad_states[-1], states[:, -1], grad_pre[:, -1], weight.contiguous(), steps, m, b, n,
                              DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative, **geometry(n, weight.dtype))
    return grad_pre

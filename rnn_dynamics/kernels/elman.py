"""The Elman recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences; it keeps the cell's N x N recurrent
matrix in registers and loops over time inside the kernel, so a step costs no launch and no
trip through global memory but the state tile it writes (the way cuDNN's persistent RNN kernels
run). Everything that is not sequential in time (the input drive W_ih x_t + b of every step,
dL/dW_hh as one matmul over the saved states) stays in torch, in :class:`ElmanRecurrence`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS
from .launch import BLOCK_B, block_size, check_buffers, grid_for, program_tile, warps_for


@triton.jit
def _forward(drive_ptr, states_ptr, weight_ptr, steps, n_cells, batch, n,
             ACTIVATION: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """states[t + 1] = f(states[t] W^T + drive[t]); drive (T, M, B, N), states (T + 1, M, B, N), weight (M, N, N)."""
    cell, rows, units, block_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    # w_t[k, j] = W[j, k], zero outside N x N: padded units never reach real ones.
    w_t = tl.load(weight_ptr + cell * n * n + units[None, :] * n + units[:, None],
                  mask=block_ok, other=0.0)
    slot = (cell * batch + rows[:, None]) * n + units[None, :]
    step = n_cells * batch * n
    drive_at = drive_ptr + slot
    state_at = states_ptr + slot
    h = tl.load(state_at, mask=tile_ok, other=0.0)
    for _ in range(steps):
        a = tl.dot(h, w_t, input_precision="ieee") + tl.load(drive_at, mask=tile_ok, other=0.0)
        h = ACTIVATION(a).to(h.dtype)
        state_at += step
        tl.store(state_at, h, mask=tile_ok)
        drive_at += step


@triton.jit
def _backward(grad_ptr, states_ptr, grad_pre_ptr, weight_ptr, steps, n_cells, batch, n,
              DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """grad_pre[t] = (grad[t] + grad_pre[t + 1] W) * f'(states[t + 1]), t = T - 1 .. 0.

    grad (T, M, B, N) time-major; states (M, T + 1, B, N) and grad_pre (M, T, B, N) cell-major; each
    pointer is that of its tensor's last step (grad[T - 1], states[:, T], grad_pre[:, T - 1]).
    """
    cell, rows, units, block_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    w = tl.load(weight_ptr + cell * n * n + units[:, None] * n + units[None, :],
                mask=block_ok, other=0.0)
    within = rows[:, None] * n + units[None, :]
    grad_step = n_cells * batch * n
    cell_step = batch * n
    grad_at = grad_ptr + cell * batch * n + within  # the pointers arrive at the last step: t = T - 1
    state_at = states_ptr + cell * (steps + 1) * batch * n + within
    grad_pre_at = grad_pre_ptr + cell * steps * batch * n + within
    carry = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    for _ in range(steps):
        out = tl.load(state_at, mask=tile_ok, other=0.0)
        delta = ((tl.load(grad_at, mask=tile_ok, other=0.0) + carry) * DERIVATIVE(out)).to(carry.dtype)
        tl.store(grad_pre_at, delta, mask=tile_ok)
        carry = tl.dot(delta, w, input_precision="ieee").to(carry.dtype)
        grad_at -= grad_step
        state_at -= cell_step
        grad_pre_at -= cell_step


def forward(drive: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill ``states[1:]`` (T + 1, M, B, N) from ``states[0]``: h_t = f(W h_{t-1} + drive_t)."""
    steps, m, b, n = drive.shape
    check_buffers(states=states)
    block_n = block_size(n)
    _forward[grid_for(m, b)](drive.contiguous(), states, weight.contiguous(), steps, m, b, n,
                             ACTIVATION=KERNEL_ACTIVATIONS.get(nonlinearity).forward, BLOCK_B=BLOCK_B,
                             BLOCK_N=block_n, num_warps=warps_for(block_n))


def backward(grad_states: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """dL/da_t for every t, cell-major (M, T, B, N), from dL/dh_t (T, M, B, N) and the cell-major states."""
    steps, m, b, n = grad_states.shape
    check_buffers(states=states)
    grad_pre = grad_states.new_empty((m, steps, b, n))
    block_n = block_size(n)
    grad_states = grad_states.contiguous()
    _backward[grid_for(m, b)](grad_states[-1], states[:, -1], grad_pre[:, -1], weight.contiguous(), steps, m, b, n,
                              DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative, BLOCK_B=BLOCK_B,
                              BLOCK_N=block_n, num_warps=warps_for(block_n))
    return grad_pre

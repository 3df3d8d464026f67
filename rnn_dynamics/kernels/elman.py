"""The Elman recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences and loops over time inside the kernel,
so a step costs no launch (as in cuDNN's persistent RNN kernels). The cell's N x N matrix is loaded
into registers once and the state tile stays in registers from step to step: a step is one tensor-core
dot (in float64 where that is fast, see :func:`~rnn_dynamics.kernels.launch.dot_arithmetic`), the
nonlinearity and the store of h_t. On an H200 this took the batch-16 forward and backward at T = 784,
N = 100 from 13.5 ms (state and matrix re-read from cache in 16-unit chunks each step, float32 FMA
dots) to 4.8 ms in TF32x3 and 4.6 ms for float64 states (benchmarks/tune_kernels.py). Everything that
is not sequential in time (the input drive W_ih x_t + b of every step, dL/dW_hh as one matmul over the
saved states) stays in torch, in :class:`ElmanRecurrence`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS
from .launch import check_buffers, dot, dot_operand, grid_for, program_tile, settings_for


@triton.jit
def _weight_tile(weight_ptr, cell, n, BLOCK_N: tl.constexpr):
    """The cell's N x N matrix as a zero-padded (BLOCK_N, BLOCK_N) register tile, [k, j] = W[k, j]."""
    ks = tl.arange(0, BLOCK_N)[:, None]
    js = tl.arange(0, BLOCK_N)[None, :]
    return tl.load(weight_ptr + cell * n * n + ks * n + js, mask=(ks < n) & (js < n), other=0.0)


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _forward(drive_ptr, states_ptr, weight_ptr, steps, n_cells, batch, n,
             ACTIVATION: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr):
    """states[t + 1] = f(states[t] W^T + drive[t]); drive (T, M, B, N), states (T + 1, M, B, N), weight (M, N, N).

    Padded units (N..BLOCK_N) meet zero rows of W^T, so whatever f(0) is they add nothing."""
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    w_t = dot_operand(tl.trans(_weight_tile(weight_ptr, cell, n, BLOCK_N)), DOT)
    step = n_cells * batch * n
    at = sequence * n + units
    h = tl.load(states_ptr + at, mask=tile_ok, other=0.0)
    for _ in range(steps):
        pre = dot(h, w_t, DOT).to(h.dtype)
        h = ACTIVATION(pre + tl.load(drive_ptr + at, mask=tile_ok, other=0.0)).to(h.dtype)
        tl.store(states_ptr + at + step, h, mask=tile_ok)
        at += step


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _backward(grad_ptr, states_ptr, grad_pre_ptr, weight_ptr, steps, n_cells, batch, n,
              DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr):
    """grad_pre[t] = (grad[t] + grad_pre[t + 1] W) * f'(states[t + 1]), t = T - 1 .. 0.

    grad (T, M, B, N) time-major; states (M, T + 1, B, N) and grad_pre (M, T, B, N) cell-major; each
    pointer is that of its tensor's last step (grad[T - 1], states[:, T], grad_pre[:, T - 1]).
    """
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    w = dot_operand(_weight_tile(weight_ptr, cell, n, BLOCK_N), DOT)
    within = (sequence - cell * batch) * n  # row offset inside one cell's (B, N) slice
    grad_at = grad_ptr + sequence * n + units
    state_at = states_ptr + cell * (steps + 1) * batch * n + within + units
    pre_at = grad_pre_ptr + cell * steps * batch * n + within + units
    carry = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    for _ in range(steps):
        out = tl.load(state_at, mask=tile_ok, other=0.0)
        delta = ((tl.load(grad_at, mask=tile_ok, other=0.0) + carry) * DERIVATIVE(out)).to(carry.dtype)
        tl.store(pre_at, delta, mask=tile_ok)
        carry = dot(delta, w, DOT).to(carry.dtype)
        grad_at -= n_cells * batch * n
        state_at -= batch * n
        pre_at -= batch * n


def forward(drive: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill ``states[1:]`` (T + 1, M, B, N) from ``states[0]``: h_t = f(W h_{t-1} + drive_t)."""
    steps, m, b, n = drive.shape
    check_buffers(states=states)
    _forward[grid_for(m, b)](drive.contiguous(), states, weight.contiguous(), steps, m, b, n,
                             ACTIVATION=KERNEL_ACTIVATIONS.get(nonlinearity).forward, **settings_for(n, weight))


def backward(grad_states: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """dL/da_t for every t, cell-major (M, T, B, N), from dL/dh_t (T, M, B, N) and the cell-major states."""
    steps, m, b, n = grad_states.shape
    check_buffers(states=states)
    grad_pre = grad_states.new_empty((m, steps, b, n))
    grad_states = grad_states.contiguous()
    _backward[grid_for(m, b)](grad_states[-1], states[:, -1], grad_pre[:, -1], weight.contiguous(), steps, m, b, n,
                              DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative, **settings_for(n, weight))
    return grad_pre

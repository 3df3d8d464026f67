"""The Elman recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences and loops over time inside the kernel,
so a step costs no launch (as in cuDNN's persistent RNN kernels). The cell's N x N matrix is loaded
once and held on chip (Triton keeps the dot's operand in shared memory: 144 KB at N = 65..128 in float64
or TF32x3, so one program per multiprocessor) and the state tile stays in registers from step to step: a
step is one tensor-core dot (in float64 where that is fast, see
:func:`~rnn_dynamics.kernels.launch.dot_arithmetic`), the nonlinearity and the store of h_t. On an H200
this took the batch-16 forward and backward at T = 784, N = 100 from 13.5 ms (state and matrix re-read
from cache in 16-unit chunks each step, float32 FMA dots) to 4.8 ms in TF32x3 and 4.6 ms for float64
states (benchmarks/tune_kernels.py). Where the matrix does not fit a program's shared memory (99 KB on
sm_86 and sm_89 GPUs) the kernels read it from cache in chunks each step (RESIDENT off), as the LSTM and
GRU kernels do. Everything that is not sequential in time (the input drive W_ih x_t + b of every step,
dL/dW_hh as one matmul over the saved states) stays in torch, in :class:`ElmanRecurrence`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS
from .launch import (BLOCK_B, LaunchOptions, blocks, check_buffers, dot, dot_operand, incoming_gradients,
                     program_tile, rows_times_block)
from .tuning import run_scan

#: 16-, 32- or 64-sequence tiles (:mod:`~rnn_dynamics.kernels.tuning` times them: larger tiles cut a large
#: stack's programs, and so its waves, at one program per multiprocessor), the cell's matrix on chip where it
#: fits the GPU's shared memory (64-sequence tiles: 192 KB at N = 100, on sm_90 but not sm_80).
LAUNCH = LaunchOptions(tile_rows=(BLOCK_B, 2 * BLOCK_B, 4 * BLOCK_B), resident=True)


@triton.jit
def _weight_tile(weight_ptr, cell, n, BLOCK_N: tl.constexpr):
    """The cell's N x N matrix as a zero-padded (BLOCK_N, BLOCK_N) register tile, [k, j] = W[k, j]."""
    ks = tl.arange(0, BLOCK_N)[:, None]
    js = tl.arange(0, BLOCK_N)[None, :]
    return tl.load(weight_ptr + cell * n * n + ks * n + js, mask=(ks < n) & (js < n), other=0.0)


@triton.jit(do_not_specialize=["steps", "batch", "drive_step", "drive_cell"])
def _forward(drive_ptr, states_ptr, weight_ptr, steps, batch, n, drive_step, drive_cell,
             ACTIVATION: tl.constexpr, RESIDENT: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
             BLOCK_K: tl.constexpr, DOT: tl.constexpr):
    """states[:, t + 1] = f(states[:, t] W^T + drive[t]); drive (T, M, B, N) with the given strides of its steps
    and cells, states cell-major (M, T + 1, B, N), weight (M, N, N). RESIDENT: W loaded once and held on chip;
    else W and h_t are read from memory (cache) in chunks each step (:func:`rows_times_block`).

    Padded units (N..BLOCK_N) meet zero rows of W^T, so whatever f(0) is they add nothing."""
    cell, rows, _, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    if RESIDENT:
        w_t = dot_operand(tl.trans(_weight_tile(weight_ptr, cell, n, BLOCK_N)), DOT)
    within = rows * n + units  # the tile's offsets inside one cell's (B, N) block
    drive_at = drive_ptr + cell * drive_cell + within
    state_at = states_ptr + cell * (steps + 1) * batch * n + within
    if not RESIDENT:  # h_t as rows (the cell's offset written out again: sharing it cost the resident
        rows_at = states_ptr + cell * (steps + 1) * batch * n + rows * n  # kernel 16 registers, sm_90)
    h = tl.load(state_at, mask=tile_ok, other=0.0)
    for _ in range(steps):
        if RESIDENT:
            pre = dot(h, w_t, DOT).to(h.dtype)
        else:
            pre = rows_times_block(rows_at, row_ok, weight_ptr + cell * n * n, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, True,
                                   DOT)
            rows_at += batch * n
        h = ACTIVATION(pre + tl.load(drive_at, mask=tile_ok, other=0.0)).to(h.dtype)
        state_at += batch * n
        tl.store(state_at, h, mask=tile_ok)
        if not RESIDENT:
            tl.debug_barrier()  # h_{t+1} complete before any thread reads it for the next product
        drive_at += drive_step


@triton.jit(do_not_specialize=["steps", "batch", "grad_step", "grad_cell"])
def _backward(grad_ptr, final_grad_ptr, states_ptr, grad_pre_ptr, weight_ptr, steps, batch, n, grad_step, grad_cell,
              HAS_GRAD: tl.constexpr, DERIVATIVE: tl.constexpr, RESIDENT: tl.constexpr, BLOCK_B: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT: tl.constexpr):
    """grad_pre[:, t] = (grad[t] + grad_pre[:, t + 1] W) * f'(states[:, t + 1]), t = T - 1 .. 0, from the carry
    dL/dh_T (final_grad, (M, B, N)); without HAS_GRAD no step's output was used and grad is not read;
    RESIDENT as in the forward.

    grad (T, M, B, N) with the given strides of its steps and cells; states (M, T + 1, B, N) and grad_pre
    (M, T, B, N) cell-major; each pointer is that of its tensor's last step (grad[T - 1], states[:, T],
    grad_pre[:, T - 1]).
    """
    cell, rows, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    if RESIDENT:
        w = dot_operand(_weight_tile(weight_ptr, cell, n, BLOCK_N), DOT)
    within = rows * n + units
    grad_at = grad_ptr + cell * grad_cell + within
    state_at = states_ptr + cell * (steps + 1) * batch * n + within
    pre_rows_at = grad_pre_ptr + cell * steps * batch * n + rows * n  # dL/da_t, as rows
    carry = tl.load(final_grad_ptr + sequence * n + units, mask=tile_ok, other=0.0)
    for _ in range(steps):
        out = tl.load(state_at, mask=tile_ok, other=0.0)
        if HAS_GRAD:
            carry += tl.load(grad_at, mask=tile_ok, other=0.0)
        delta = (carry * DERIVATIVE(out)).to(carry.dtype)
        tl.store(pre_rows_at + units, delta, mask=tile_ok)
        if RESIDENT:
            carry = dot(delta, w, DOT).to(carry.dtype)
        else:
            tl.debug_barrier()  # dL/da_t complete before any thread reads it for the product
            carry = rows_times_block(pre_rows_at, row_ok, weight_ptr + cell * n * n, 0, n, BLOCK_B, BLOCK_N, BLOCK_K,
                                     False, DOT)
        grad_at -= grad_step
        state_at -= batch * n
        pre_rows_at -= batch * n


def forward(drive: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill ``states[:, 1:]`` (cell-major, M, T + 1, B, N) from ``states[:, 0]``: h_t = f(W h_{t-1} + drive_t),
    drive (T, M, B, N) in any layout whose (B, N) blocks are contiguous."""
    steps, m, b, n = drive.shape
    check_buffers(states=states)
    drive, drive_step, drive_cell = blocks(drive)
    run_scan(_forward, LAUNCH, (m, b, n), weight, states[:, -1], drive_ptr=drive, states_ptr=states,
             weight_ptr=weight.contiguous(), steps=steps, batch=b, n=n, drive_step=drive_step, drive_cell=drive_cell,
             ACTIVATION=KERNEL_ACTIVATIONS.get(nonlinearity).forward)


def backward(grad_states: torch.Tensor | None, grad_final: torch.Tensor | None, states: torch.Tensor,
             weight: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """dL/da_t for every t, cell-major (M, T, B, N), from dL/dh_t (T, M, B, N; None: no step's output used),
    dL/dh_T of the final state (None: unused) and the cell-major states (M, T + 1, B, N)."""
    m, steps, b, n = states.shape[0], states.shape[1] - 1, states.shape[2], states.shape[3]
    check_buffers(states=states)
    grad_pre = states.new_empty((m, steps, b, n))
    run_scan(_backward, LAUNCH, (m, b, n), weight, grad_pre[:, 0],
             **incoming_gradients(grad_states, grad_final, (m, b, n), states), states_ptr=states[:, -1],
             grad_pre_ptr=grad_pre[:, -1], weight_ptr=weight.contiguous(), steps=steps, batch=b, n=n,
             DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative)
    return grad_pre

"""Candidate Elman scan kernels that hold the cell's N x N matrix in registers for the whole sequence
and carry the state tile in registers from step to step (tensor-core dots), against the chunked
kernels of rnn_dynamics.kernels.elman that re-read both from cache each step. Same buffers and maths;
benchmarks/tune_kernels.py times both."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from rnn_dynamics.kernels.activations import KERNEL_ACTIVATIONS
from rnn_dynamics.kernels.launch import block_size, grid_for, program_tile


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _forward(drive_ptr, states_ptr, weight_ptr, steps, n_cells, batch, n,
             ACTIVATION: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    ks = tl.arange(0, BLOCK_N)[:, None]
    w_t = tl.trans(tl.load(weight_ptr + cell * n * n + ks * n + units, mask=(ks < n) & (units < n), other=0.0))
    step = n_cells * batch * n
    at = sequence * n + units
    h = tl.load(states_ptr + at, mask=tile_ok, other=0.0)
    for _ in range(steps):
        pre = tl.dot(h, w_t, input_precision=PRECISION).to(h.dtype)
        h = ACTIVATION(pre + tl.load(drive_ptr + at, mask=tile_ok, other=0.0)).to(h.dtype)
        tl.store(states_ptr + at + step, h, mask=tile_ok)
        at += step


@triton.jit(do_not_specialize=["steps", "n_cells", "batch"])
def _backward(grad_ptr, states_ptr, grad_pre_ptr, weight_ptr, steps, n_cells, batch, n,
              DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    cell, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N)
    ks = tl.arange(0, BLOCK_N)[:, None]
    w = tl.load(weight_ptr + cell * n * n + ks * n + units, mask=(ks < n) & (units < n), other=0.0)
    within = (sequence - cell * batch) * n
    grad_at = grad_ptr + sequence * n + units
    state_at = states_ptr + cell * (steps + 1) * batch * n + within + units
    pre_at = grad_pre_ptr + cell * steps * batch * n + within + units
    carry = tl.zeros((BLOCK_B, BLOCK_N), dtype=grad_pre_ptr.dtype.element_ty)
    for _ in range(steps):
        out = tl.load(state_at, mask=tile_ok, other=0.0)
        delta = ((tl.load(grad_at, mask=tile_ok, other=0.0) + carry) * DERIVATIVE(out)).to(carry.dtype)
        tl.store(pre_at, delta, mask=tile_ok)
        carry = tl.dot(delta, w, input_precision=PRECISION).to(carry.dtype)
        grad_at -= n_cells * batch * n
        state_at -= batch * n
        pre_at -= batch * n


def forward(drive, states, weight, nonlinearity, precision, num_warps):
    steps, m, b, n = drive.shape
    _forward[grid_for(m, b)](drive, states, weight, steps, m, b, n, ACTIVATION=KERNEL_ACTIVATIONS.get(nonlinearity).forward,
                             BLOCK_B=16, BLOCK_N=block_size(n), PRECISION=precision, num_warps=num_warps, num_stages=1)


def backward(grad_states, states, weight, nonlinearity, precision, num_warps):
    steps, m, b, n = grad_states.shape
    grad_pre = grad_states.new_empty((m, steps, b, n))
    _backward[grid_for(m, b)](grad_states[-1], states[:, -1], grad_pre[:, -1], weight, steps, m, b, n,
                              DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative, BLOCK_B=16,
                              BLOCK_N=block_size(n), PRECISION=precision, num_warps=num_warps, num_stages=1)
    return grad_pre


def scan(drive, states, weight, grad, precision: str, num_warps: int = 8) -> torch.Tensor:
    forward(drive, states, weight, "relu", precision, num_warps)
    return backward(grad, states.transpose(0, 1).contiguous(), weight, "relu", precision, num_warps)

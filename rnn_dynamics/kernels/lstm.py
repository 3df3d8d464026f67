"""The LSTM recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

Each program owns one cell and a tile of BLOCK_B sequences and loops over time inside the kernel,
as :mod:`rnn_dynamics.kernels.elman` does; the products run through the four N x N gate blocks
(input, forget, output, candidate, as in :mod:`rnn_dynamics.models.lstm`), read from cache. The
buffers are those of :class:`LSTMRecurrence`'s loop: h and c (T + 1, M, B, N), the gate activations
(T, M, B, 4N); dL/dW_hh stays one matmul in torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .activations import KERNEL_ACTIVATIONS, sigmoid
from .launch import (GATED_LAUNCH, arrive, blocks, check_buffers, incoming_gradients, meeting, program_tile,
                     rows_times_block, rows_times_weight, wait_for)
from .tuning import run_scan

LAUNCH = GATED_LAUNCH


@triton.jit(do_not_specialize=["steps", "first", "count", "n_cells", "batch", "drive_step", "drive_cell"])
def _forward(drive_ptr, hidden_ptr, cell_ptr, gates_ptr, weight_ptr, counter_ptr, steps, first, count, n_cells, batch,
             n, drive_step, drive_cell, PHI: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
             BLOCK_K: tl.constexpr, DOT: tl.constexpr, SPLIT: tl.constexpr):
    """i, f, o = sigmoid(a), g = phi(a), a = h W^T + drive; c' = f c + i g; h' = o phi(c'), for t = first..first +
    count - 1 of T = steps; h cell-major (M, T + 1, B, N), as the backward's dL/dW_hh and a layer above read it.
    Split (SPLIT > 1), each of a cell's programs makes its slice of the units and the programs meet at every step
    at their counter (:func:`~rnn_dynamics.kernels.launch.wait_for`)."""
    cell, rows, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N, SPLIT)
    weight_at = weight_ptr + cell * 4 * n * n
    counter_at, ready = meeting(counter_ptr)  # ready: NaN once a split cell's wait gives up
    step, gate_step, start = n_cells * batch * n, n_cells * batch * 4 * n, first.to(tl.int64)
    rows_at = hidden_ptr + (cell * (steps + 1) * batch + rows) * n + start * batch * n  # h_t, as rows
    cell_at = cell_ptr + sequence * n + units + start * step
    drive_at = drive_ptr + cell * drive_cell + rows * 4 * n + units + start * drive_step  # any (B, 4N) blocks
    gates_at = gates_ptr + sequence * 4 * n + units + start * gate_step
    c = tl.load(cell_at, mask=tile_ok, other=0.0)
    for t in range(first, first + count):
        ready = wait_for(counter_at, SPLIT * t, ready, SPLIT)  # h_t whole
        # One gate at a time, each stored as soon as it is made: fewer tiles live at once (fewer spills).
        f = sigmoid(rows_times_block(rows_at, row_ok, weight_at, 1, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
                    + tl.load(drive_at + n, mask=tile_ok, other=0.0)).to(c.dtype)
        tl.store(gates_at + n, f, mask=tile_ok)
        c = f * c
        i = sigmoid(rows_times_block(rows_at, row_ok, weight_at, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
                    + tl.load(drive_at, mask=tile_ok, other=0.0)).to(c.dtype)
        tl.store(gates_at, i, mask=tile_ok)
        g = PHI(rows_times_block(rows_at, row_ok, weight_at, 3, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
                + tl.load(drive_at + 3 * n, mask=tile_ok, other=0.0)).to(c.dtype)
        tl.store(gates_at + 3 * n, g, mask=tile_ok)
        c += i * g
        o = sigmoid(rows_times_block(rows_at, row_ok, weight_at, 2, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
                    + tl.load(drive_at + 2 * n, mask=tile_ok, other=0.0)).to(c.dtype)
        tl.store(gates_at + 2 * n, o, mask=tile_ok)
        rows_at += batch * n
        cell_at += step
        tl.store(rows_at + units, (o * PHI(c) * ready).to(c.dtype), mask=tile_ok)
        tl.store(cell_at, c, mask=tile_ok)
        arrive(counter_at, SPLIT)  # h_{t+1} complete before any thread (or program) reads it for the next products
        drive_at += drive_step
        gates_at += gate_step


@triton.jit(do_not_specialize=["steps", "first", "count", "n_cells", "batch", "grad_step", "grad_cell"])
def _backward(grad_ptr, final_grad_ptr, cell_ptr, gates_ptr, grad_pre_ptr, weight_ptr, counter_ptr, carry_ptr, steps,
              first, count, n_cells, batch, n, grad_step, grad_cell, HAS_GRAD: tl.constexpr, PHI: tl.constexpr,
              DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
              DOT: tl.constexpr, SPLIT: tl.constexpr):
    """dL/da_t for the walk's steps first..first + count - 1 (t = T - 1 - k for the k-th), from dL/dh_t, carrying
    dL/dh and dL/dc back a step at a time from dL/d(h_T, c_T) (final_grad, (M, B, 2N)); without HAS_GRAD no
    step's output was used and grad is not read. A split launch that starts inside the walk makes dL/dh from
    dL/da_{t+1} in memory and takes dL/dc from carry, where the launch before, ending there, left it (Triton's
    interpreter walks a split cell one step per launch: :func:`~rnn_dynamics.kernels.tuning.split_walks`).

    Every pointer arrives at its tensor's last step: grad[T - 1] (T, M, B, N, with the given strides of its steps
    and cells), cell[T] (T + 1, M, B, N), gates[T - 1] (T, M, B, 4N) and grad_pre[:, T - 1] (cell-major,
    M, T, B, 4N: dL/dW_hh and the drive's gradient read it without a transposing copy).
    """
    cell, rows, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N, SPLIT)
    weight_at = weight_ptr + cell * 4 * n * n
    counter_at, ready = meeting(counter_ptr)  # ready: NaN once a split cell's wait gives up
    step, gate_step, start = n_cells * batch * n, n_cells * batch * 4 * n, first.to(tl.int64)
    grad_at = grad_ptr + cell * grad_cell + rows * n + units - start * grad_step
    cell_at = cell_ptr + sequence * n + units - start * step
    gates_at = gates_ptr + sequence * 4 * n + units - start * gate_step
    pre_rows_at = grad_pre_ptr + (cell * steps * batch + rows) * 4 * n - start * batch * 4 * n  # dL/da_t, as rows
    carry_h = tl.load(final_grad_ptr + sequence * 2 * n + units, mask=tile_ok, other=0.0)
    carry_c = tl.load(final_grad_ptr + sequence * 2 * n + n + units, mask=tile_ok, other=0.0)
    carry_at = carry_ptr + sequence * BLOCK_N + units
    if SPLIT > 1:
        if first > 0:
            carry_h = rows_times_weight(pre_rows_at + batch * 4 * n, row_ok, weight_at, n, 4, BLOCK_B, BLOCK_N,
                                        BLOCK_K, DOT, SPLIT)
            carry_c = tl.load(carry_at, mask=tile_ok, other=0.0)
    for k in range(first, first + count):
        i = tl.load(gates_at, mask=tile_ok, other=0.0)
        f = tl.load(gates_at + n, mask=tile_ok, other=0.0)
        o = tl.load(gates_at + 2 * n, mask=tile_ok, other=0.0)
        g = tl.load(gates_at + 3 * n, mask=tile_ok, other=0.0)
        c = tl.load(cell_at, mask=tile_ok, other=0.0)
        c_before = tl.load(cell_at - step, mask=tile_ok, other=0.0)
        squashed = PHI(c).to(c.dtype)
        d_h = carry_h * ready
        if HAS_GRAD:
            d_h += tl.load(grad_at, mask=tile_ok, other=0.0)
        d_c = (carry_c + d_h * o * DERIVATIVE(squashed)).to(c.dtype)
        pre_at = pre_rows_at + units
        tl.store(pre_at, (d_c * g * i * (1.0 - i)).to(c.dtype), mask=tile_ok)
        tl.store(pre_at + n, (d_c * c_before * f * (1.0 - f)).to(c.dtype), mask=tile_ok)
        tl.store(pre_at + 2 * n, (d_h * squashed * o * (1.0 - o)).to(c.dtype), mask=tile_ok)
        tl.store(pre_at + 3 * n, (d_c * i * DERIVATIVE(g)).to(c.dtype), mask=tile_ok)
        arrive(counter_at, SPLIT)  # dL/da_t complete before any thread (or program) reads it for the products
        carry_c = d_c * f
        if SPLIT > 1:
            if k + 1 < first + count:  # a launch's last step leaves the products to the next launch
                ready = wait_for(counter_at, SPLIT * (k + 1), ready, SPLIT)  # dL/da_t whole
                carry_h = rows_times_weight(pre_rows_at, row_ok, weight_at, n, 4, BLOCK_B, BLOCK_N, BLOCK_K, DOT,
                                            SPLIT)
        else:
            carry_h = rows_times_weight(pre_rows_at, row_ok, weight_at, n, 4, BLOCK_B, BLOCK_N, BLOCK_K, DOT)
        grad_at -= grad_step
        cell_at -= step
        gates_at -= gate_step
        pre_rows_at -= batch * 4 * n
    if SPLIT > 1:
        if first + count < steps:
            tl.store(carry_at, carry_c, mask=tile_ok)


def forward(drive: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, gates: torch.Tensor,
            weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill hidden[:, 1:] (cell-major, M, T + 1, B, N) and cell[1:] (T + 1, M, B, N) from their step 0, and gates
    (T, M, B, 4N)."""
    steps, m, b, four_n = drive.shape
    check_buffers(hidden=hidden, cell=cell, gates=gates)
    drive, drive_step, drive_cell = blocks(drive)
    n = four_n // 4
    run_scan(_forward, LAUNCH, (m, b, n), weight, hidden[:, -1], drive_ptr=drive, hidden_ptr=hidden,
             cell_ptr=cell, gates_ptr=gates, weight_ptr=weight.contiguous(), steps=steps, n_cells=m, batch=b, n=n,
             drive_step=drive_step, drive_cell=drive_cell, PHI=KERNEL_ACTIVATIONS.get(nonlinearity).forward)


def backward(grad_hidden: torch.Tensor | None, grad_final: torch.Tensor | None, cell: torch.Tensor,
             gates: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """dL/da_t (T, M, B, 4N), a view of cell-major memory, from dL/dh_t (T, M, B, N; None: no step's output
    used), dL/d(h_T, c_T) (M, B, 2N; None: unused) and the forward's cell states and gate activations."""
    steps, m, b, four_n = gates.shape
    n = four_n // 4
    check_buffers(cell=cell, gates=gates)
    grad_pre = gates.new_empty((m, steps, b, 4 * n))
    activation = KERNEL_ACTIVATIONS.get(nonlinearity)
    run_scan(_backward, LAUNCH, (m, b, n), weight, grad_pre[:, 0],
             **incoming_gradients(grad_hidden, grad_final, (m, b, 2 * n), gates), cell_ptr=cell[-1],
             gates_ptr=gates[-1], grad_pre_ptr=grad_pre[:, -1], weight_ptr=weight.contiguous(), steps=steps,
             n_cells=m, batch=b, n=n, PHI=activation.forward, DERIVATIVE=activation.derivative)
    return grad_pre.transpose(0, 1)

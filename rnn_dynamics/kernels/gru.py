"""The GRU recurrence as two persistent Triton kernels: one launch walks all T steps forward, one back.

The layout follows :mod:`rnn_dynamics.kernels.lstm` (one program per cell and tile of sequences;
products through the three N x N gate blocks reset, update, candidate, read from cache). The buffers are
those of :class:`GRURecurrence`'s loop: h (T + 1, M, B, N), the gate activations r, z, n and the
recurrent parts W h_{t-1} (+ b_hn for the candidate), both (T, M, B, 3N); dL/dW_hh and dL/db_hn stay
in torch.
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
def _forward(drive_ptr, b_hn_ptr, hidden_ptr, gates_ptr, from_h_ptr, weight_ptr, counter_ptr, steps, first, count,
             n_cells, batch, n, drive_step, drive_cell, PHI: tl.constexpr, BLOCK_B: tl.constexpr,
             BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT: tl.constexpr, SPLIT: tl.constexpr):
    """r, z = sigmoid(drive + h W^T), n = phi(drive_n + r (h W_n^T + b_hn)), h' = n + z (h - n), for t = first..first
    + count - 1 of T = steps; h cell-major (M, T + 1, B, N), as the backward, dL/dW_hh and a layer above read it.
    Split (SPLIT > 1), each of a cell's programs makes its slice of the units and the programs meet at every step
    at their counter (:func:`~rnn_dynamics.kernels.launch.wait_for`)."""
    cell, rows, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N, SPLIT)
    weight_at = weight_ptr + cell * 3 * n * n
    counter_at, ready = meeting(counter_ptr)  # ready: NaN once a split cell's wait gives up
    b_hn = tl.load(b_hn_ptr + cell * n + units, mask=units < n, other=0.0)
    gate_step, start = n_cells * batch * 3 * n, first.to(tl.int64)
    rows_at = hidden_ptr + (cell * (steps + 1) * batch + rows) * n + start * batch * n  # h_t, as rows
    gate_slot = sequence * 3 * n + units + start * gate_step
    gates_at, from_h_at = gates_ptr + gate_slot, from_h_ptr + gate_slot
    drive_at = drive_ptr + cell * drive_cell + rows * 3 * n + units + start * drive_step  # any (B, 3N) blocks
    h = tl.load(rows_at + units, mask=tile_ok, other=0.0)
    for t in range(first, first + count):
        ready = wait_for(counter_at, SPLIT * t, ready, SPLIT)  # h_t whole
        # One gate at a time, each stored as soon as it is made: fewer tiles live at once (fewer spills).
        h_r = rows_times_block(rows_at, row_ok, weight_at, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
        tl.store(from_h_at, h_r, mask=tile_ok)
        r = sigmoid(tl.load(drive_at, mask=tile_ok, other=0.0) + h_r).to(h.dtype)
        tl.store(gates_at, r, mask=tile_ok)
        h_n = (rows_times_block(rows_at, row_ok, weight_at, 2, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
               + b_hn).to(h.dtype)
        tl.store(from_h_at + 2 * n, h_n, mask=tile_ok)
        candidate = PHI(tl.load(drive_at + 2 * n, mask=tile_ok, other=0.0) + r * h_n).to(h.dtype)
        tl.store(gates_at + 2 * n, candidate, mask=tile_ok)
        h_z = rows_times_block(rows_at, row_ok, weight_at, 1, n, BLOCK_B, BLOCK_N, BLOCK_K, True, DOT, SPLIT)
        tl.store(from_h_at + n, h_z, mask=tile_ok)
        z = sigmoid(tl.load(drive_at + n, mask=tile_ok, other=0.0) + h_z).to(h.dtype)
        tl.store(gates_at + n, z, mask=tile_ok)
        h = ((candidate + z * (h - candidate)) * ready).to(h.dtype)
        rows_at += batch * n
        tl.store(rows_at + units, h, mask=tile_ok)
        arrive(counter_at, SPLIT)  # h_{t+1} complete before any thread (or program) reads it for the next products
        drive_at += drive_step
        gates_at += gate_step
        from_h_at += gate_step


@triton.jit(do_not_specialize=["steps", "first", "count", "n_cells", "batch", "grad_step", "grad_cell"])
def _backward(grad_ptr, final_grad_ptr, hidden_ptr, gates_ptr, from_h_ptr, grad_drive_ptr, grad_from_h_ptr,
              weight_ptr, counter_ptr, carry_ptr, steps, first, count, n_cells, batch, n, grad_step, grad_cell,
              HAS_GRAD: tl.constexpr, DERIVATIVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
              BLOCK_K: tl.constexpr, DOT: tl.constexpr, SPLIT: tl.constexpr):
    """dL/d(drive_t) and dL/d(W h_{t-1} + b) for the walk's steps first..first + count - 1 (t = T - 1 - k for the
    k-th) from dL/dh_t, carrying dL/dh back a step at a time from dL/dh_T (final_grad, (M, B, N)); without
    HAS_GRAD no step's output was used and grad is not read. dL/dh reaching step t from step t + 1 is d_h z there
    plus the products of dL/d(W h_t + b): a split launch that starts inside the walk makes those from memory and
    takes d_h z from carry, where the launch before, ending there, left it (Triton's interpreter walks a split cell
    one step per launch: :func:`~rnn_dynamics.kernels.tuning.split_walks`).

    Every pointer arrives at its tensor's last step: grad[T - 1] (T, M, B, N, with the given strides of its steps
    and cells), hidden[:, T - 1] (h_{T-1}, cell-major M, T + 1, B, N), gates and from_h at [T - 1] (T, M, B, 3N), and
    grad_drive and grad_from_h at [:, T - 1] (cell-major, M, T, B, 3N: dL/dW_hh and the drive's gradient read
    them without a transposing copy).
    """
    cell, rows, sequence, units, row_ok, tile_ok = program_tile(batch, n, BLOCK_B, BLOCK_N, SPLIT)
    weight_at = weight_ptr + cell * 3 * n * n
    counter_at, ready = meeting(counter_ptr)  # ready: NaN once a split cell's wait gives up
    gate_step, start = n_cells * batch * 3 * n, first.to(tl.int64)
    grad_at = grad_ptr + cell * grad_cell + rows * n + units - start * grad_step
    hidden_at = hidden_ptr + (cell * (steps + 1) * batch + rows) * n + units - start * batch * n
    gate_slot = sequence * 3 * n + units - start * gate_step
    gates_at, from_h_at = gates_ptr + gate_slot, from_h_ptr + gate_slot
    by_cell = (cell * steps * batch + rows) * 3 * n - start * batch * 3 * n  # the cell-major gradients' rows
    grad_drive_at = grad_drive_ptr + by_cell + units
    pre_rows_at = grad_from_h_ptr + by_cell  # dL/d(W h_{t-1} + b), as rows for the products
    carry = tl.load(final_grad_ptr + sequence * n + units, mask=tile_ok, other=0.0)
    carry_at = carry_ptr + sequence * BLOCK_N + units
    if SPLIT > 1:
        if first > 0:
            carry = (tl.load(carry_at, mask=tile_ok, other=0.0)
                     + rows_times_weight(pre_rows_at + batch * 3 * n, row_ok, weight_at, n, 3, BLOCK_B, BLOCK_N,
                                         BLOCK_K, DOT, SPLIT)).to(carry.dtype)
    for k in range(first, first + count):
        r = tl.load(gates_at, mask=tile_ok, other=0.0)
        z = tl.load(gates_at + n, mask=tile_ok, other=0.0)
        candidate = tl.load(gates_at + 2 * n, mask=tile_ok, other=0.0)
        h_n = tl.load(from_h_at + 2 * n, mask=tile_ok, other=0.0)
        before = tl.load(hidden_at, mask=tile_ok, other=0.0)
        d_h = carry * ready
        if HAS_GRAD:
            d_h += tl.load(grad_at, mask=tile_ok, other=0.0)
        c_n = (d_h * (1.0 - z) * DERIVATIVE(candidate)).to(r.dtype)
        c_r = (c_n * h_n * r * (1.0 - r)).to(r.dtype)
        c_z = (d_h * (before - candidate) * z * (1.0 - z)).to(r.dtype)
        tl.store(grad_drive_at, c_r, mask=tile_ok)
        tl.store(grad_drive_at + n, c_z, mask=tile_ok)
        tl.store(grad_drive_at + 2 * n, c_n, mask=tile_ok)
        pre_at = pre_rows_at + units
        tl.store(pre_at, c_r, mask=tile_ok)
        tl.store(pre_at + n, c_z, mask=tile_ok)
        tl.store(pre_at + 2 * n, (c_n * r).to(r.dtype), mask=tile_ok)
        arrive(counter_at, SPLIT)  # dL/d(W h_{t-1} + b) complete before any thread (or program) reads it
        if SPLIT > 1:
            if k + 1 < first + count:  # the unsplit kernel's expression, which the compiler may fuse alike
                ready = wait_for(counter_at, SPLIT * (k + 1), ready, SPLIT)  # dL/d(W h_{t-1} + b) whole
                carry = (d_h * z + rows_times_weight(pre_rows_at, row_ok, weight_at, n, 3, BLOCK_B, BLOCK_N, BLOCK_K,
                                                     DOT, SPLIT)).to(r.dtype)
            else:  # a launch's last step leaves the products to the next launch
                carry = (d_h * z).to(r.dtype)
        else:
            carry = (d_h * z + rows_times_weight(pre_rows_at, row_ok, weight_at, n, 3, BLOCK_B, BLOCK_N, BLOCK_K, DOT)
                     ).to(r.dtype)
        grad_at -= grad_step
        hidden_at -= batch * n
        gates_at -= gate_step
        from_h_at -= gate_step
        grad_drive_at -= batch * 3 * n
        pre_rows_at -= batch * 3 * n
    if SPLIT > 1:
        if first + count < steps:
            tl.store(carry_at, carry, mask=tile_ok)


def forward(drive: torch.Tensor, b_hn: torch.Tensor, hidden: torch.Tensor, gates: torch.Tensor,
            from_h: torch.Tensor, weight: torch.Tensor, nonlinearity: str) -> None:
    """Fill hidden[:, 1:] (cell-major, M, T + 1, B, N) from hidden[:, 0], and gates and from_h (T, M, B, 3N)."""
    steps, m, b, three_n = drive.shape
    check_buffers(hidden=hidden, gates=gates, from_h=from_h)
    drive, drive_step, drive_cell = blocks(drive)
    n = three_n // 3
    run_scan(_forward, LAUNCH, (m, b, n), weight, hidden[:, -1], drive_ptr=drive, b_hn_ptr=b_hn.contiguous(),
             hidden_ptr=hidden, gates_ptr=gates, from_h_ptr=from_h, weight_ptr=weight.contiguous(), steps=steps,
             n_cells=m, batch=b, n=n, drive_step=drive_step, drive_cell=drive_cell,
             PHI=KERNEL_ACTIVATIONS.get(nonlinearity).forward)


def backward(grad_hidden: torch.Tensor | None, grad_final: torch.Tensor | None, hidden: torch.Tensor,
             gates: torch.Tensor, from_h: torch.Tensor, weight: torch.Tensor,
             nonlinearity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/d(drive_t) and dL/d(W h_{t-1} + b), both (T, M, B, 3N) views of cell-major memory, from dL/dh_t
    (T, M, B, N; None: no step's output used) and dL/dh_T (M, B, N; None: unused)."""
    steps, m, b, three_n = gates.shape
    n = three_n // 3
    check_buffers(hidden=hidden, gates=gates, from_h=from_h)
    grad_drive, grad_from_h = (gates.new_empty((m, steps, b, 3 * n)) for _ in range(2))  # cell-major
    run_scan(_backward, LAUNCH, (m, b, n), weight, grad_drive[:, 0],
             **incoming_gradients(grad_hidden, grad_final, (m, b, n), gates), hidden_ptr=hidden[:, -2],
             gates_ptr=gates[-1], from_h_ptr=from_h[-1], grad_drive_ptr=grad_drive[:, -1],
             grad_from_h_ptr=grad_from_h[:, -1], weight_ptr=weight.contiguous(), steps=steps, n_cells=m, batch=b, n=n,
             DERIVATIVE=KERNEL_ACTIVATIONS.get(nonlinearity).derivative)
    return grad_drive.transpose(0, 1), grad_from_h.transpose(0, 1)

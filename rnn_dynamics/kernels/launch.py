"""What the scan kernels share: launch geometry (one program per cell and tile of BLOCK_B sequences),
buffer checks, and the product of a state tile with one gate block of a cell's recurrent weight."""

from __future__ import annotations

import triton
import triton.language as tl

#: Sequences per program: tl.dot needs at least 16 rows; smaller batches are masked.
BLOCK_B = 16
#: The largest hidden size whose recurrent matrix a program keeps in registers (128 x 128 floats).
MAX_HIDDEN = 128


def block_size(hidden: int) -> int:
    """Units per program: N rounded up to a power of two, at least 16 (tl.dot's smallest)."""
    return max(16, triton.next_power_of_2(hidden))


def warps_for(block_n: int) -> int:
    """Warps per program: enough threads that a BLOCK_N x BLOCK_N matrix fits their registers."""
    return 2 if block_n <= 32 else 4 if block_n <= 64 else 8


def check_buffers(**buffers) -> None:
    """The kernels index the buffers they write as contiguous; anything else is a caller's bug."""
    for name, tensor in buffers.items():
        if not tensor.is_contiguous():
            raise ValueError(f"scan kernel buffer {name!r} must be contiguous, got strides {tensor.stride()}")


def grid_for(n_cells: int, batch: int) -> tuple[int, int]:
    return n_cells, triton.cdiv(batch, BLOCK_B)


@triton.jit
def program_tile(batch, n, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's cell (int64, so that offsets past 2^31 stay exact), its BLOCK_B sequence rows, its
    BLOCK_N units, and the masks of real entries in an N x N block and in a (BLOCK_B, BLOCK_N) state tile."""
    cell = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    units = tl.arange(0, BLOCK_N)
    unit_ok = units < n
    return cell, rows, units, unit_ok[:, None] & unit_ok[None, :], (rows < batch)[:, None] & unit_ok[None, :]


@triton.jit
def times_block(x, weight_at, gate: tl.constexpr, n, units, block_ok, TRANSPOSED: tl.constexpr):
    """x @ W_gate^T (TRANSPOSED) or x @ W_gate, W_gate the N x N rows gate * N.. of a cell's (G * N, N) weight."""
    if TRANSPOSED:
        w = tl.load(weight_at + (gate * n + units[None, :]) * n + units[:, None], mask=block_ok, other=0.0)
    else:
        w = tl.load(weight_at + (gate * n + units[:, None]) * n + units[None, :], mask=block_ok, other=0.0)
    return tl.dot(x, w, input_precision="ieee")

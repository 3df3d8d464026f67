"""Launch geometry shared by the scan kernels: one program per (cell, tile of BLOCK_B sequences)."""

from __future__ import annotations

import triton

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

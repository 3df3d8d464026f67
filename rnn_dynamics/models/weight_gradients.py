"""Weight gradients of a stack as sums of outer products over every step and sequence, cut for a GPU.

dL/dW for each cell is sum_k g_k x_k^T over K = T x B rows (T = 784, B = 256: 200,704 rows). As one bmm over
M cells that is M small outputs (N x N, or N x 1 for W_ih of a scalar input) each reduced over a very long
K, which leaves a GPU's multiprocessors mostly idle: on an H200 (Elman, batch 256 x 32 cells, float32) the
two such products took 12.2 of an update's 31 ms (benchmarks/profile_update.py). Cutting K into chunks
whose products are summed after (split-K, as GEMM libraries do for such shapes) gives the GPU M x chunks
independent products. The CPU keeps the single product.
"""

from __future__ import annotations

import torch

#: Rows a chunk keeps at least: its product's output (P x Q) is written and summed once more, which costs
#: under 3% of reading its rows at P = Q = 100.
MIN_CHUNK_ROWS = 4096


def split_k_chunks(rows: int, device: torch.device) -> int:
    """How many chunks a reduction over ``rows`` is cut into: 1 off CUDA, else the largest divisor of
    ``rows`` that leaves chunks of at least :data:`MIN_CHUNK_ROWS` (a divisor, so chunks are views)."""
    if device.type != "cuda":
        return 1
    most = rows // MIN_CHUNK_ROWS
    return max((d for d in range(1, most + 1) if rows % d == 0), default=1)


def summed_outer_products(g: torch.Tensor, x: torch.Tensor, chunks: int | None = None) -> torch.Tensor:
    """sum_k g[m, k]^T x[m, k] for every cell m: (M, K, P), (M, K, Q) -> (M, P, Q).

    ``chunks`` (default :func:`split_k_chunks`) must divide K; the chunks' products are summed after. They
    run as one bmm over M x chunks where both operands' cells and chunks merge into one batch dim without a
    copy, else one bmm per cell: the states' slice of a longer buffer (T + 1 steps a cell) and an input
    shared by every cell do not merge, and copying the states would move 2.6 GB at batch 256 x 32 cells.
    """
    m, rows = g.shape[:2]
    chunks = split_k_chunks(rows, g.device) if chunks is None else chunks
    if rows % chunks:
        raise ValueError(f"chunks {chunks} must divide the {rows} rows")
    if chunks == 1:
        return torch.bmm(g.transpose(1, 2), x)
    g4 = g.reshape(m, chunks, rows // chunks, g.shape[2]).transpose(2, 3)
    x4 = x.reshape(m, chunks, rows // chunks, x.shape[2])
    g3, x3 = _as_batches(g4), _as_batches(x4)
    if g3 is not None and x3 is not None:
        parts = torch.bmm(g3, x3).view(m, chunks, g.shape[2], x.shape[2])
    else:
        parts = torch.stack([torch.bmm(g4[cell], x4[cell]) for cell in range(m)])
    return parts.sum(1)


def _as_batches(t4: torch.Tensor) -> torch.Tensor | None:
    """(M, S, R, C) as (M S, R, C) without a copy, or None where its strides do not allow that."""
    try:
        return t4.view(-1, *t4.shape[2:])
    except RuntimeError:
        return None


class InputDrive(torch.autograd.Function):
    """W_ih x + b for every step of every cell in one ``baddbmm`` (M, K, G N), whose W_ih gradient is a
    :func:`summed_outer_products` (autograd's own is the single long bmm). Composes with ``torch.func``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(flat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(bias, flat, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, inputs, output):
        flat, weight, _ = inputs
        ctx.save_for_backward(flat, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        flat, weight = ctx.saved_tensors
        needs_flat, needs_weight, needs_bias = ctx.needs_input_grad
        return (torch.bmm(grad, weight) if needs_flat else None,
                summed_outer_products(grad, flat) if needs_weight else None,
                grad.sum(1, keepdim=True) if needs_bias else None)

"""The input drive of a stack's first layer, bias + x W_ih^T for one input x shared by every cell, as an autograd
Function: its forward makes a single input's drive elementwise, and its backward splits dL/dW_ih, which reduces
T x B rows per cell into a G N x I block that a GPU serves badly as one bmm.

On an H200 (the adding problem at T = 784: I = 2, N = 100, batch 256, 32 cells, 200,704 rows per cell),
autograd's bmm for dL/dW_ih ran as 64 thread blocks (two 64-row tiles of each cell's 100 x 2 block), which
read the 2.6 GB of dL/d(drive) at about 450 GB/s: 5.7 of an update's 28.7 ms of GPU time
(benchmarks/profile_update.py, 2026-11-30). Here, on a GPU, the rows are cut into chunks of at least
:data:`SPLIT_ROWS` and every (cell, chunk) product is one block of a single bmm (split-K; the input, I values a
row, is copied once per cell for it), then the chunks are summed. On the CPU it stays one bmm, as autograd's.
"""

from __future__ import annotations

import torch

#: Where the weight gradient is split: device types.
SPLIT_DEVICES = ("cuda",)
#: Rows per chunk of the split weight gradient, at least: enough that a chunk's product is worth a thread block.
SPLIT_ROWS = 4096
#: Inputs of at most this size are split: the copy of the input per cell (M x rows x I values) stays small
#: beside dL/d(drive) (M x rows x G N values); a wide input's product has blocks enough unsplit.
SPLIT_MAX_INPUTS = 16


def chunks_for(rows: int, inputs: int, device: torch.device) -> int:
    """How many chunks the weight gradient's rows are cut into: 1 (one bmm) off :data:`SPLIT_DEVICES`, for a wide
    input or fewer than two chunks' rows; else the most chunks of at least :data:`SPLIT_ROWS` rows that divide
    ``rows``."""
    if device.type not in SPLIT_DEVICES or inputs > SPLIT_MAX_INPUTS or rows < 2 * SPLIT_ROWS:
        return 1
    return most_chunks(rows, SPLIT_ROWS)


def most_chunks(rows: int, min_rows: int) -> int:
    """The most chunks of at least ``min_rows`` rows each that divide ``rows`` (1 where none do)."""
    return max((d for d in range(1, rows // min_rows + 1) if rows % d == 0), default=1)


def weight_gradient(grad: torch.Tensor, inputs: torch.Tensor, chunks: int) -> torch.Tensor:
    """sum_k grad[m, k] inputs[k]^T per cell: grad (M, K, P) contiguous, inputs (K, I) shared; (M, P, I), as one bmm
    over M x ``chunks`` products of K / chunks rows each, summed after. Each product is inputs^T grad, as
    autograd's baddbmm forms it (on the CPU, grad^T inputs took 1.5x the time at I = 1)."""
    m, rows, width = grad.shape
    if chunks == 1:
        return torch.bmm(inputs.expand(m, -1, -1).transpose(1, 2), grad).transpose(1, 2)
    part = rows // chunks
    pieces = inputs.reshape(1, chunks, part, -1).expand(m, -1, -1, -1).reshape(m * chunks, part, -1)
    products = torch.bmm(pieces.transpose(1, 2), grad.view(m * chunks, part, width))
    return products.view(m, chunks, -1, width).sum(dim=1).transpose(1, 2)


class SharedInputDrive(torch.autograd.Function):
    """bias + inputs W^T per cell: inputs (K, I) shared by the M cells, weight (M, P, I), bias (M, 1, P); the
    drive (M, K, P), cell-major and contiguous, in one ``baddbmm``, or for one input (I = 1, pixel MNIST) in one
    ``addcmul``: a bmm whose sums have one term each is slow (2 CPU cores, 6 cells x 12,544 rows x 100 units:
    0.30x baddbmm's time; I = 2 as two addcmuls took 1.30x, so it stays a bmm)."""

    @staticmethod
    def forward(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if inputs.shape[-1] == 1:
            return torch.addcmul(bias, inputs, weight.transpose(1, 2))
        return torch.baddbmm(bias, inputs.expand(weight.shape[0], -1, -1), weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, args, output) -> None:
        inputs, weight, _ = args
        ctx.save_for_backward(inputs, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inputs, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_inputs = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_inputs = torch.bmm(grad, weight).sum(dim=0)
        if ctx.needs_input_grad[1]:
            grad_weight = weight_gradient(grad, inputs, chunks_for(grad.shape[1], inputs.shape[-1], grad.device))
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=1, keepdim=True)
        return grad_inputs, grad_weight, grad_bias

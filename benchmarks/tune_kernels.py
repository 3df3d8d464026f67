"""On a GPU: the Elman scan kernels alone under other launch settings, against cuDNN at the same shape.

    python benchmarks/tune_kernels.py

Times one forward and one backward launch of rnn_dynamics.kernels.elman (T = 784, N = 100, float32,
relu) for each setting of (sequences per program, warps, units per chunk) at batch 16 and 256 and
stacks of 1 and 32 cells, beside M sequential cuDNN torch.nn.RNN forward + backward passes of the same
shape (input size 1, as in pixel MNIST): the data for choosing ``launch.geometry``. Each setting's
states and gradients are first checked against the default setting's. Medians of triton.testing.do_bench.
"""

from __future__ import annotations

import itertools
import sys

import torch
import triton

from rnn_dynamics.kernels import elman, launch

STEPS, HIDDEN = 784, 100
SHAPES = ((16, 1), (16, 32), (256, 1), (256, 32))  # (batch, cells)
SETTINGS = list(itertools.product((16, 32), (2, 4, 8), (16, 32)))  # (BLOCK_B, num_warps, BLOCK_K)


def problem(batch: int, cells: int, gen: torch.Generator):
    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen)).cuda()
    drive = rand(STEPS, cells, batch, HIDDEN, scale=0.1)
    states = torch.zeros(STEPS + 1, cells, batch, HIDDEN, device="cuda")
    states[0] = rand(cells, batch, HIDDEN)
    weight = rand(cells, HIDDEN, HIDDEN, scale=0.9 / HIDDEN ** 0.5)
    return drive, states, weight, rand(STEPS, cells, batch, HIDDEN)


def scan(drive, states, weight, grad):
    """Forward, then backward from the cell-major states (as ElmanRecurrence hands them over)."""
    elman.forward(drive, states, weight, "relu")
    return elman.backward(grad, states.transpose(0, 1).contiguous(), weight, "relu")


def with_setting(block_b: int, warps: int, block_k: int, fn):
    """Run ``fn`` with the kernels launched under one setting, then restore the module's own."""
    saved_block_b, saved_geometry = launch.BLOCK_B, elman.geometry
    launch.BLOCK_B = block_b
    elman.geometry = lambda n: dict(BLOCK_B=block_b, BLOCK_N=launch.block_size(n), BLOCK_K=block_k,
                                    num_warps=warps, num_stages=1)
    try:
        return fn()
    finally:
        launch.BLOCK_B, elman.geometry = saved_block_b, saved_geometry


def cudnn_time(batch: int) -> float:
    rnn = torch.nn.RNN(1, HIDDEN, nonlinearity="relu").cuda()
    x = torch.randn(STEPS, batch, 1, device="cuda")

    def step():
        outputs, _ = rnn(x)
        outputs.sum().backward()
    return triton.testing.do_bench(step, return_mode="median")


def main() -> int:
    if not torch.cuda.is_available():
        print("tune_kernels: no CUDA GPU is visible to torch; run it on a machine with one", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    default = launch.geometry(HIDDEN)
    print(f"{torch.cuda.get_device_name()}, triton {triton.__version__}; Elman scan forward + backward, T = {STEPS}, "
          f"N = {HIDDEN}, float32; default BLOCK_B={launch.BLOCK_B}, num_warps={default['num_warps']}, "
          f"BLOCK_K={default['BLOCK_K']}; ms (x cuDNN's time for M sequential torch.nn.RNN forward + backward)")
    for batch, cells in SHAPES:
        args = problem(batch, cells, gen)
        reference_grad = scan(*args)
        reference_states = args[1].clone()
        cudnn = cells * cudnn_time(batch)
        row = []
        for block_b, warps, block_k in SETTINGS:
            grad = with_setting(block_b, warps, block_k, lambda: scan(*args))
            error = max(float((grad - reference_grad).abs().max() / reference_grad.abs().max()),
                        float((args[1] - reference_states).abs().max() / reference_states.abs().max()))
            if not error <= 1e-5:
                row.append(f"{block_b}/{warps}/{block_k}: WRONG ({error:.1e})")
                continue
            ms = with_setting(block_b, warps, block_k,
                              lambda: triton.testing.do_bench(lambda: scan(*args), return_mode="median"))
            row.append(f"{block_b}/{warps}/{block_k}: {ms:6.2f} ({ms / cudnn:4.2f}x)")
        print(f"batch {batch:3d}, M = {cells:2d}, cuDNN {cudnn:6.2f} ms; BLOCK_B/warps/BLOCK_K:")
        for start in range(0, len(row), 4):
            print("   " + "   ".join(row[start:start + 4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

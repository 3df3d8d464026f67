"""Ways to compute a stack's weight gradients, sum_k g_k x_k^T over K = T x B rows per cell, timed in one process.

    python benchmarks/bench_weight_gradients.py                  # cuda: batch 256 x 32 cells, T = 784, N = 100
    python benchmarks/bench_weight_gradients.py --device cpu --batch 4 --cells 2 --seq-len 20

On an H200 these two products took 12.2 of an Elman update's 28.7 ms of GPU time at batch 256 x 32 cells
(benchmarks/profile_update.py, 2026-11-30): each is one bmm over M cells whose outputs are small (N x N for
dW_hh, N x I for dW_ih) and whose reduction is long (200,704 rows), which leaves most multiprocessors idle.
This script times, in float32, one bmm (the baseline: dW_hh's way on every device, and dW_ih's on the CPU, each
in the operand order the model uses) against split-K candidates, each cutting K into chunks of at least 4,096
rows (--chunk-rows) whose products are summed after:
  per cell  one bmm per cell over its chunks (tried in the model: 11.9 against 12.2 ms, reverted);
  copied    the operand whose cells and chunks cannot merge into one batch dim copied contiguous first
            (the states, a slice of the kernels' (M, T + 1, B, N) buffer; the input shared by every cell),
            then one bmm over M x chunks: for dW_ih, the model's way on a GPU since 2026-11-30
            (rnn_dynamics.models._drive, not yet timed there);
  padded    (dW_hh only) dL/da in an (M, T + 1, B, N) buffer whose last step is zero, beside the states'
            buffer of the same shape: chunks of whole buffers merge with no copy, one bmm.
and, not split, the one bmm with its operands swapped (g^T h against h^T g, transposed back; x^T g against
g^T x): cuBLAS picks its kernel by the output's shape, N x I or I x N per cell.
Prints per product and way the median time, its ratio to one bmm's and its largest error against float64
(relative to the largest entry), timed as bench_gpu.py times (per_call). On the CPU it checks the ways rather
than timing a GPU.
"""

from __future__ import annotations

import argparse

import torch
from arguments import positive_int, present_device
from bench_gpu import per_call

from rnn_dynamics.models._drive import most_chunks, weight_gradient


def one_bmm(g, x):
    """(M, K, P), (M, K, Q) -> (M, P, Q) in one bmm over cells, as g^T x: the Elman backward's dW_hh."""
    return torch.bmm(g.transpose(1, 2), x)


def swapped(g, x):
    """The same in one bmm as (x^T g)^T: the same sums, another output shape for cuBLAS; autograd's dW_ih (the
    input's baddbmm backward), which the H200 ran as 64 thread blocks."""
    return torch.bmm(x.transpose(1, 2), g).transpose(1, 2)


def per_cell(g, x, chunks):
    m, rows = g.shape[:2]
    g4 = g.reshape(m, chunks, rows // chunks, -1).transpose(2, 3)
    x4 = x.reshape(m, chunks, rows // chunks, x.shape[-1])
    return torch.stack([torch.bmm(g4[cell], x4[cell]) for cell in range(m)]).sum(1)


def copied(g, x, chunks):
    """One bmm over M x chunks; ``reshape`` copies whichever operand does not merge."""
    m, rows = g.shape[:2]
    g3 = g.reshape(m * chunks, rows // chunks, -1).transpose(1, 2)
    x3 = x.reshape(m * chunks, rows // chunks, x.shape[-1])
    return torch.bmm(g3, x3).view(m, chunks, g.shape[-1], x.shape[-1]).sum(1)


def padded(g_padded, states, chunks):
    """g_padded, states (M, T + 1, B, N), both contiguous, g's last step zero: one bmm, no copy."""
    m, n = states.shape[0], states.shape[-1]
    rows = states[0].numel() // n
    g3 = g_padded.view(m * chunks, rows // chunks, n).transpose(1, 2)
    x3 = states.view(m * chunks, rows // chunks, n)
    return torch.bmm(g3, x3).view(m, chunks, n, n).sum(1)


def compare(title: str, ways: dict, exact: torch.Tensor, device: str, repeats: int) -> dict[str, float]:
    """Time and check each way; the first is the baseline. Returns each way's relative error."""
    print(title)
    errors, base = {}, None
    for name, fn in ways.items():
        error = float((fn().double() - exact).abs().max() / exact.abs().max())
        ms = per_call(fn, device, repeats) * 1e3  # its first, sizing call warms cuBLAS's heuristics and the allocator
        base = base or ms
        errors[name] = error
        print(f"  {name:10s} {ms:8.2f} ms ({base / ms:5.2f}x one bmm's speed), error {error:.1e}")
    return errors


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=positive_int, default=256, help="sequences B (default 256)")
    parser.add_argument("--cells", type=positive_int, default=32, help="cells M (default 32)")
    parser.add_argument("--seq-len", type=positive_int, default=784, help="steps T (default 784)")
    parser.add_argument("--hidden", type=positive_int, default=100, help="units N (default 100)")
    parser.add_argument("--inputs", type=positive_int, default=1, help="input size I of the shared input (default 1)")
    parser.add_argument("--chunk-rows", type=positive_int, default=4096,
                        help="rows a chunk keeps at least (default 4096)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs per way, median (default 5)")
    parser.add_argument("--device", default="cuda", type=present_device, help="cuda, cuda:K or cpu (default cuda)")
    return parser.parse_args(argv)


def main(argv=None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    m, t, b, n = args.cells, args.seq_len, args.batch, args.hidden
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape):  # drawn where they are used: 1.3e9 numbers at the default sizes
        return torch.randn(*shape, generator=gen, device=device)
    states = rand(m, t + 1, b, n)  # as the kernels write them: h_0 .. h_T per cell
    g_padded = torch.cat([rand(m, t, b, n), torch.zeros(m, 1, b, n, device=device)], dim=1)
    g = g_padded[:, :t].contiguous()  # dL/da as the model keeps it: (M, T, B, N)
    x = rand(1, t * b, args.inputs).expand(m, -1, -1)  # one input shared by every cell
    rows = t * b
    chunks, padded_chunks = most_chunks(rows, args.chunk_rows), most_chunks(rows + b, args.chunk_rows)
    g3, h3 = g.view(m, rows, n), states[:, :t].reshape(m, rows, n)
    print(f"{device}: {m} cells x batch {b}, T = {t}, N = {n}, I = {args.inputs}, float32; chunks of the "
          f"{rows} rows: {chunks} (padded: {padded_chunks} of {rows + b})")
    exact_hh = one_bmm(g3.double(), h3.double())
    exact_ih = one_bmm(g3.double(), x.double())
    hh = compare("dL/dW_hh (N x N per cell)", {
        "one bmm": lambda: one_bmm(g3, h3),
        "swapped": lambda: swapped(g3, h3),
        "per cell": lambda: per_cell(g3, h3, chunks),
        "copied": lambda: copied(g3, h3, chunks),
        "padded": lambda: padded(g_padded, states, padded_chunks),
    }, exact_hh, args.device, args.repeats)
    ih = compare(f"dL/dW_ih (N x {args.inputs} per cell, the input shared)", {
        "one bmm": lambda: swapped(g3, x),  # the baseline: autograd's way, the model's until 2026-11-30
        "swapped": lambda: one_bmm(g3, x),
        "per cell": lambda: per_cell(g3, x, chunks),
        "copied": lambda: weight_gradient(g3, x[0], chunks),  # the model's way on a GPU
    }, exact_ih, args.device, args.repeats)
    return {"dW_hh": hh, "dW_ih": ih}


if __name__ == "__main__":
    main()

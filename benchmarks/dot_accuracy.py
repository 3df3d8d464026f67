"""How exact each dot arithmetic of the scan kernels is over a long sequence, on the CPU (no GPU needed).

    python benchmarks/dot_accuracy.py

Runs the Elman forward h_t = f(W h_{t-1} + drive_t) of a stack of the six init families (N = 100,
T = 784, float32 states) with each way the kernels can multiply a state tile by W
(``rnn_dynamics.kernels.launch.dot_arithmetic``), and prints the states' largest error against float64
(relative to the largest state): the float32 loop's own matmul; "float64" (operands widened, the sum
rounded once); "tf32x3" emulated bit for bit (each operand split into a TF32 high part, rounded to
nearest as cvt.rna.tf32.f32 does, and a TF32 low part; hi*hi + hi*lo + lo*hi, each product exact and
the sum in float32, as tensor cores accumulate); "tf32" (one product of the high parts).

Then, on the problem of ``tune_kernels.py``'s section 1 (relu, contracting W = 0.5 / sqrt(N) N(0, 1),
drive 0.1 N(0, 1), h_0 N(0, 1)), the states' error and the relu units (of T x B x N) whose sign differs
from float64's: each switched unit changes dL/da by about its incoming gradient, which is what that
script's dL/da error column measures where it is large.
"""

from __future__ import annotations

import torch

from rnn_dynamics.models import get_cell

INITS = ["identity", "orthogonal", "he", "xavier", "random_walk", "scaled_identity:scale=0.5"]
STEPS, HIDDEN = 784, 100


def to_tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32's 10 explicit mantissa bits, to nearest with ties away from zero."""
    return ((x.contiguous().view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32)


def exact_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() @ b.double()).float()


def tf32x3(h: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    h_hi, w_hi = to_tf32(h), to_tf32(w_t)
    h_lo, w_lo = to_tf32(h - h_hi), to_tf32(w_t - w_hi)
    return exact_product(h_hi, w_lo) + exact_product(h_lo, w_hi) + exact_product(h_hi, w_hi)


DOTS = {"float32 loop": torch.matmul, "float64": exact_product, "tf32x3": tf32x3,
        "tf32": lambda h, w_t: exact_product(to_tf32(h), to_tf32(w_t))}


def states(dot, w_t: torch.Tensor, drive: torch.Tensor, f, dtype, initial=None) -> torch.Tensor:
    """All T states of every cell from ``initial`` (default 0); w_t (M, N, N) is W transposed, drive (T, M, B, N)."""
    h = torch.zeros(drive.shape[1:], dtype=dtype) if initial is None else initial.to(dtype)
    w_t, drive = w_t.to(dtype), drive.to(dtype)
    out = []
    for step_drive in drive:
        h = f(torch.stack([dot(h[m], w_t[m]) for m in range(len(w_t))]) + step_drive)
        out.append(h)
    return torch.stack(out)


def main() -> None:
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    print(f"Elman forward, T = {STEPS}, N = {HIDDEN}, the six inits, float32 states: largest error against float64")
    for nonlinearity, f in (("relu", torch.relu), ("tanh", torch.tanh)):
        for batch in (16, 256):
            torch.manual_seed(0)
            stack = get_cell("elman").from_inits(INITS, 1, HIDDEN, 1, nonlinearity).double()
            x = torch.rand(STEPS, batch, 1, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                drive = stack.layer_drive(0, x)
                w_t = stack.w_hh[0].transpose(1, 2)
                exact = states(torch.matmul, w_t, drive, f, torch.float64)
                scale = exact.abs().max()
                errors = {name: ((states(dot, w_t, drive, f, torch.float32).double() - exact).abs().max() / scale)
                          for name, dot in DOTS.items()}
            print(f"  {nonlinearity} batch {batch:3d}: " + ", ".join(f"{name} {error:.1e}"
                                                                 for name, error in errors.items()))
    print("tune_kernels.py's problem (relu, one cell): states' largest error against float64, relu units switched")
    for batch in (16, 256):
        print(f"  batch {batch:3d}: " + ", ".join(f"{name} {error:.1e} ({switched} switched)"
                                                  for name, (error, switched) in switched_units(batch, gen).items()))


def switched_units(batch: int, gen: torch.Generator) -> dict[str, tuple[float, int]]:
    """Per dot arithmetic: the states' largest relative error against float64 and the units whose sign differs."""
    def rand(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
    drive, initial = rand(STEPS, 1, batch, HIDDEN, scale=0.1), rand(1, batch, HIDDEN)
    w_t = rand(1, HIDDEN, HIDDEN, scale=0.5 / HIDDEN ** 0.5).transpose(1, 2)
    exact = states(torch.matmul, w_t, drive, torch.relu, torch.float64, initial)
    result = {}
    for name, dot in DOTS.items():
        approx = states(dot, w_t, drive, torch.relu, torch.float32, initial).double()
        error = float((approx - exact).abs().max() / exact.abs().max())
        result[name] = error, int(((approx > 0) != (exact > 0)).sum())
    return result


if __name__ == "__main__":
    main()

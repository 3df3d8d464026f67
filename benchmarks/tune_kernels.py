"""On a GPU: the scan kernels under each dot arithmetic, timed alone and checked against float64,
beside cuDNN: the data for ``launch.dot_arithmetic`` and ``launch.geometry``.

    python benchmarks/tune_kernels.py

1. The Elman scan (one forward and one backward launch, T = 784, N = 100, relu) at batch 16 and 256
   and stacks of 1 and 32 cells, in float32 with each dot arithmetic and in float64. Each run's largest
   error against the float64 kernel on the same inputs (relative to each tensor's largest value; the
   recurrent matrices contract, so that rounding is not amplified over the 784 steps), for the states
   and for dL/da apart, and the number of relu units whose sign differs from float64's come first: a
   unit that switches changes dL/da by about its incoming gradient (a jump, not a rounding error), so
   where any switched, dL/da's error says how many did rather than how exact the dots are. Then its
   median time (triton.testing.do_bench), then M sequential cuDNN torch.nn.RNN forward + backward
   passes of the same shape (input size 1, as in pixel MNIST) with and without TF32.
2. The LSTM and GRU stacks (forward + backward through the model, kernels on) per arithmetic, against
   cuDNN torch.nn.LSTM / torch.nn.GRU.
3. Each launch geometry the kernels may be tuned into (rnn_dynamics.kernels.tuning), forced, at each shape:
   the Elman scan at those of 1., the LSTM and GRU stacks at batch 16 with one cell (their widest gap to
   cuDNN; there also with the cell's units split among 2, 4 or 8 programs) and at batch 256 with 32 cells, in
   float32 with the GPU's default arithmetic; the Elman also with its matrix streamed from cache, as on GPUs
   whose shared memory cannot hold it. A tuned launch picks the fastest of these (the line's minimum).
"""

from __future__ import annotations

import sys

import torch
import triton

from rnn_dynamics.kernels import elman, gru, launch, lstm, scan_kernels
from rnn_dynamics.kernels.tuning import describe, forced_geometry
from rnn_dynamics.models import get_cell

STEPS, HIDDEN = 784, 100
DEVICE = "cuda"
SHAPES = ((16, 1), (16, 32), (256, 1), (256, 32))  # (batch, cells)
GATED_SHAPES = ((16, 1), (256, 32))  # section 3's: 12 and 8 geometries (a cell split only at the first)
INITS = ["identity", "orthogonal", "he", "xavier", "random_walk", "scaled_identity"]


def with_arithmetic(arithmetic: str, fn):
    """Run ``fn`` with every scan kernel's dot in ``arithmetic``, then restore the module's choice."""
    saved = launch.dot_arithmetic
    launch.dot_arithmetic = lambda dtype, gpu: arithmetic
    try:
        return fn()
    finally:
        launch.dot_arithmetic = saved


def elman_scan(arithmetic: str):
    """One forward and one backward launch in ``arithmetic``, in the default launch geometry unless the caller
    forces another (untuned, so that 1. compares arithmetics alone)."""
    def scan(drive, states, weight, grad):
        def run():
            with forced_geometry():
                elman.forward(drive, states, weight, "relu")
                return elman.backward(grad, None, states, weight, "relu")
        return with_arithmetic(arithmetic, run)
    return scan


VARIANTS = {"float32, float64 dots": (torch.float32, "float64"), "float32 tf32x3": (torch.float32, "tf32x3"),
            "float32 tf32": (torch.float32, "tf32"), "float64": (torch.float64, "float64")}


def problem(batch: int, cells: int, gen: torch.Generator, dtype):
    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(DEVICE, dtype)
    drive = rand(cells, STEPS, batch, HIDDEN, scale=0.1).transpose(0, 1)  # cell-major, as layer_drive makes it
    states = torch.zeros(cells, STEPS + 1, batch, HIDDEN, device=DEVICE, dtype=dtype)  # cell-major
    states[:, 0] = rand(cells, batch, HIDDEN)
    weight = rand(cells, HIDDEN, HIDDEN, scale=0.5 / HIDDEN ** 0.5)
    return drive, states, weight, rand(STEPS, cells, batch, HIDDEN)


def relative_error(values, reference) -> float:
    values, reference = values.detach().double(), reference.detach()
    return float((values - reference).abs().max() / reference.abs().max())


def switched_units(states, reference) -> int:
    """Units (of every step, sequence and cell) that relu lets through in one run and not the other."""
    return int(((states[:, 1:] > 0) != (reference[:, 1:] > 0)).sum())


def cudnn_time(module_cls, batch: int, tf32: bool, **options) -> float:
    rnn = module_cls(1, HIDDEN, **options).to(DEVICE)
    x = torch.randn(STEPS, batch, 1, device=DEVICE)

    def step():
        outputs, _ = rnn(x)
        outputs.sum().backward()
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        return triton.testing.do_bench(step, return_mode="median")
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def elman_variants(gen) -> None:
    print(f"1. Elman scan forward + backward, T = {STEPS}, N = {HIDDEN}: error vs float64, ms (x cuDNN's time)")
    for batch, cells in SHAPES:
        cudnn = {tf32: cells * cudnn_time(torch.nn.RNN, batch, tf32, nonlinearity="relu") for tf32 in (True, False)}
        print(f" batch {batch:3d}, M = {cells:2d}: cuDNN {cudnn[True]:6.2f} ms (TF32 allowed, torch's default), "
              f"{cudnn[False]:6.2f} ms (TF32 off)")
        args64 = problem(batch, cells, gen, torch.float64)
        reference_grad = elman_scan("float64")(*args64)
        reference_states = args64[1].clone()
        for name, (dtype, arithmetic) in VARIANTS.items():
            args = [t.to(dtype) for t in args64]
            args[1] = args[1].clone()
            scan = elman_scan(arithmetic)
            grad = scan(*args)
            errors = relative_error(args[1], reference_states), relative_error(grad, reference_grad)
            switched = switched_units(args[1], reference_states)
            ms = triton.testing.do_bench(lambda: scan(*args), return_mode="median")
            print(f"   {name:21s} error: states {errors[0]:7.1e}, dL/da {errors[1]:7.1e} ({switched} units "
                  f"switched)  {ms:7.2f} ms ({ms / cudnn[True]:5.2f}x cuDNN)")


def gated_arithmetics(gen) -> None:
    print("2. LSTM / GRU stacks, forward + backward through the model (kernels on), batch 16: error vs float64, ms")
    for cell, module_cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        for cells in (1, 4):
            stack64 = get_cell(cell).from_inits(INITS[:cells], 1, HIDDEN, 1, "tanh").to(DEVICE, torch.float64)
            stack = get_cell(cell).from_inits(INITS[:cells], 1, HIDDEN, 1, "tanh").to(DEVICE)
            stack.load_state_dict({k: v.float() for k, v in stack64.state_dict().items()})
            x64 = torch.rand(STEPS, 16, 1, generator=gen, dtype=torch.float64).to(DEVICE)

            def step(model, x):
                out, _ = model.forward_with_state(x, None)
                return out, torch.autograd.grad(out.square().sum(), list(model.parameters()))
            with scan_kernels("on"):
                out64, grads64 = step(stack64, x64)
            cudnn = cells * cudnn_time(module_cls, 16, True)
            line = []
            for arithmetic in ("float64", "tf32x3", "tf32"):
                def run():
                    with scan_kernels("on"):
                        return step(stack, x64.float())
                out, grads = with_arithmetic(arithmetic, run)
                error = max(relative_error(a, b) for a, b in zip([out, *grads], [out64, *grads64]))
                ms = with_arithmetic(arithmetic, lambda: triton.testing.do_bench(run, return_mode="median"))
                line.append(f"{arithmetic} {error:.1e} {ms:6.2f} ms ({ms / cudnn:4.1f}x)")
            print(f"   {cell} M = {cells}: cuDNN {cudnn:5.2f} ms; " + "; ".join(line))


def timed(run) -> str:
    """``run``'s median time in ms, or why it failed: a geometry this GPU's Triton cannot build (the tuner skips
    it there) costs its entry, not the rest of the table."""
    try:
        return f"{triton.testing.do_bench(run, return_mode='median'):6.2f}"
    except Exception as error:  # noqa: BLE001 - reported in the table
        first_line = (str(error).splitlines() or [""])[0]
        return f"failed ({type(error).__name__}: {first_line[:80]})"


def geometry_scan(gen) -> None:
    print("3. launch geometries (forced), float32, forward + backward: ms")
    gpu = torch.cuda.get_device_capability()
    for batch, cells in SHAPES:
        args = [t.float() for t in problem(batch, cells, gen, torch.float64)]
        candidates = launch.geometries(HIDDEN, torch.float32, gpu, elman.LAUNCH, batch)
        candidates += [dict(candidates[0], RESIDENT=False)]
        arithmetic = candidates[0]["DOT"]
        line = []
        for settings in candidates:
            def run():
                with forced_geometry(**settings):
                    return elman_scan(arithmetic)(*args)
            line.append(f"{describe(settings)} {timed(run)}")
        print(f"   elman batch {batch:3d}, M = {cells:2d}: " + "; ".join(line))
    for cell, module in (("lstm", lstm), ("gru", gru)):
        for batch, cells in GATED_SHAPES:
            stack = get_cell(cell).from_inits((INITS * 6)[:cells], 1, HIDDEN, 1, "tanh").to(DEVICE)
            x = torch.rand(STEPS, batch, 1, generator=gen).to(DEVICE)

            def step():
                out, _ = stack.forward_with_state(x, None)
                return torch.autograd.grad(out.square().sum(), list(stack.parameters()))
            line = []
            target = launch.device_target(x)  # splits only where every program gets a multiprocessor
            for settings in launch.geometries(HIDDEN, torch.float32, options=module.LAUNCH, batch=batch,
                                              n_cells=cells, **target):
                def run():
                    with scan_kernels("on"), forced_geometry(**settings):
                        return step()
                line.append(f"{describe(settings)} {timed(run)}")
            print(f"   {cell} batch {batch:3d}, M = {cells:2d}: " + "; ".join(line))


def main() -> int:
    if not torch.cuda.is_available():
        print("tune_kernels: no CUDA GPU is visible to torch; run it on a machine with one", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    gen = torch.Generator().manual_seed(0)
    elman_variants(gen)
    gated_arithmetics(gen)
    geometry_scan(gen)
    return 0


if __name__ == "__main__":
    sys.exit(main())

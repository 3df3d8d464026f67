"""On a GPU: this project's stacks against M sequential cuDNN runs, as ratios measured in one process.

    python benchmarks/bench_gpu.py            # the GPU issue's table, the default study on cuda and cpu, probes
    python benchmarks/bench_gpu.py --quick    # fewer cells, updates and repeats

Needs a CUDA GPU; without one it says so on one line and exits with code 2. Prints, at the pixel-MNIST
shape (T = 784, N = 100, Adam, per-cell clipping, --probe-every 0; same batches for both sides):
  0. whether the fused scan kernels (rnn_dynamics.kernels) run here, or the per-step loop and why;
  1. per batch size (16, 256) and stack size M (1, 6, 32, 128): ms per update of a stack of M Elman
     cells against M sequential torch.nn.RNN runs (cuDNN), and the ratio
     (targets: M = 1 at most 2x cuDNN's time; M = 6 faster; M = 32 at least 10x faster), and the
     same stack with the kernels off (RNN_DYNAMICS_KERNELS=off: the per-step loop), and the peak GPU memory
     of one update against that of one cuDNN run. cuDNN runs as torch sets it up by default, which lets its
     float32 products use TF32 on Ampere and later GPUs (PyTorch asks for CUDNN_FMA_MATH only where TF32 is
     switched off), while this project's dots are float64 or TF32x3 (float32-class); so the cuDNN runs are
     also timed with TF32 off (IEEE float32), the like-for-like baseline, and the header says which
     arithmetic each side used;
  2. the same for the LSTM and the GRU (M up to 32) against torch.nn.LSTM / torch.nn.GRU (cuDNN), and the
     launch geometries the tuned kernels chose;
  3. one call of each default probe and of the Lyapunov probe on a stack of 6, on cuda and on the CPU, in a
     context whose traces (and CPU copy of a cuda stack) are built, as a probe step builds them once for
     all its probes; and one whole probe step (context, traces, copy and the default probes);
  4. the default study (python -m analyses.spectra) on cuda and on the CPU, whole commands (last: the
     longest section where the kernels do not run).
Every GPU timing synchronises before reading the clock; medians of alternating repeats.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_spine import BASELINES, INITS, plain_training, stack_training

from rnn_dynamics.config import StudyConfig
from rnn_dynamics.jacobians import default_lags
from rnn_dynamics.kernels import scan_kernel, scan_kernels
from rnn_dynamics.models import get_cell
from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings
from rnn_dynamics.tasks import make_task
from rnn_dynamics.train import flushed_denormals

ROOT = Path(__file__).resolve().parents[1]


def synced(fn, device: str) -> float:
    """Seconds ``fn`` takes, the device's queued work included (``device``: cpu, cuda or cuda:K)."""
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if on_gpu:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def per_call(fn, device: str, repeats: int, min_seconds: float = 0.05) -> float:
    """Seconds one call of ``fn`` takes (synced): the median of ``repeats`` timings, each of as many calls as fill
    ``min_seconds`` by one call timed first. A probe of a few milliseconds timed one call at a time read 1.5x
    apart on a GPU and a CPU stack whose probe ran the same CPU work (H200 run of 2026-11-30)."""
    calls = max(1, math.ceil(min_seconds / max(synced(fn, device), 1e-9)))

    def batch():
        for _ in range(calls):
            fn()
    return statistics.median(synced(batch, device) for _ in range(repeats)) / calls


def peak_gigabytes(fn) -> float:
    """GPU memory (GiB) that ``fn`` holds at its peak beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2 ** 30


def _cudnn_rnn_tf32_flag() -> tuple[object, str, object]:
    """Where torch keeps whether cuDNN's float32 RNN products may use TF32, and the value that forbids it:
    ``torch.backends.cudnn.rnn.fp32_precision`` (torch >= 2.9; reading the legacy flag after setting this one
    raises), else the legacy ``torch.backends.cudnn.allow_tf32``."""
    rnn = torch.backends.cudnn.rnn
    if hasattr(rnn, "fp32_precision"):
        return rnn, "fp32_precision", "ieee"
    return torch.backends.cudnn, "allow_tf32", False


def cudnn_float32_products() -> str:
    """What torch's settings let cuDNN's float32 RNN products use: "tf32" (torch's default) or "ieee"."""
    holder, name, ieee = _cudnn_rnn_tf32_flag()
    return "ieee" if getattr(holder, name) == ieee else "tf32"


@contextmanager
def cudnn_in_ieee_float32():
    """cuDNN's float32 RNN products in IEEE float32 (CUDNN_FMA_MATH), not TF32, inside the block."""
    holder, name, ieee = _cudnn_rnn_tf32_flag()
    previous = getattr(holder, name)
    setattr(holder, name, ieee)
    try:
        yield
    finally:
        setattr(holder, name, previous)


def inits_for(m: int) -> list[str]:
    """M distinct init specs (the six families, then scaled identities of other scales)."""
    return (INITS + [f"scaled_identity:scale={0.1 + 0.01 * i:.2f}" for i in range(max(0, m - len(INITS)))])[:m]


def stack_against_cudnn(cell: str, sizes, batch: int, steps: int, repeats: int, device: str = "cuda") -> None:
    module_cls, _, nonlinearity = BASELINES[cell]
    task = make_task("adding", seq_len=784, seed=0, batch_size=batch, preset="default")
    stack_training(cell, nonlinearity, task, inits_for(1), 2, 100, device)  # warm-up: kernels, allocator
    plain_training(module_cls, nonlinearity, task, 2, 100, device)
    for m in sizes:
        stack_training(cell, nonlinearity, task, inits_for(m), 1, 100, device)  # this M's first-use costs
        ours, theirs, theirs_ieee, loop = [], [], [], []
        for _ in range(repeats):  # alternate, so that drifts hit both sides alike
            ours.append(synced(lambda: stack_training(cell, nonlinearity, task, inits_for(m), steps, 100, device),
                               device))
            theirs.append(m * synced(lambda: plain_training(module_cls, nonlinearity, task, steps, 100, device),
                                     device))
            with cudnn_in_ieee_float32():
                theirs_ieee.append(m * synced(lambda: plain_training(module_cls, nonlinearity, task, steps, 100,
                                                                     device), device))
            with scan_kernels("off"):
                loop.append(synced(lambda: stack_training(cell, nonlinearity, task, inits_for(m), steps, 100, device),
                                   device))
        t_ours, t_theirs, t_ieee, t_loop = (statistics.median(times) / steps
                                            for times in (ours, theirs, theirs_ieee, loop))
        memory_ours = peak_gigabytes(lambda: stack_training(cell, nonlinearity, task, inits_for(m), 1, 100, device))
        memory_theirs = peak_gigabytes(lambda: plain_training(module_cls, nonlinearity, task, 1, 100, device))
        print(f"  batch {batch:3d}, M = {m:3d}: this project {t_ours * 1e3:7.1f} ms/update, {m} sequential cuDNN "
              f"torch.nn.{module_cls.__name__} {t_theirs * 1e3:7.1f} ms/update: {t_theirs / t_ours:.2f}x faster "
              f"(cuDNN in IEEE float32 {t_ieee * 1e3:7.1f} ms/update: {t_ieee / t_ours:.2f}x); "
              f"per-step loop {t_loop * 1e3:7.1f} ms/update; peak memory of an update {memory_ours:.2f} GiB, "
              f"of one cuDNN run's {memory_theirs:.2f} GiB")


def study_time(device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analyses.spectra", "--quiet", "--device", device, "--out",
                        str(Path(tmp) / "study.nc")], cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - start


def probe_costs(repeats: int, devices=("cuda", "cpu")) -> None:
    task = make_task("adding", seq_len=784, seed=0, batch_size=16, preset="default")
    config = StudyConfig()
    settings = ProbeSettings(tuple(default_lags(784)), config.probe_batch, test_size=256)
    names = [*config.probes, "lyapunov"]
    times = {}
    for device in devices:
        model = get_cell("elman").from_inits(INITS, task.input_size, 100, task.output_size, "relu").to(device)
        with flushed_denormals():
            shared = ProbeContext(model, task, 0, settings, INITS)
            shared.trace, shared.cpu_context.trace  # what a probe step builds once for all its probes
        for name in names:
            probe = PROBES.get(name)
            with flushed_denormals():
                if name == "lyapunov":  # seconds per call: one-time costs hardly count there
                    times[device, name] = synced(lambda: probe(shared), device)
                else:
                    probe(shared)  # untimed first call: one-time costs (imports, xarray's first arrays)
                    times[device, name] = per_call(lambda: probe(shared), device, repeats)

        def probe_step():
            """A study's probe step: the default probes share one context (one CPU copy of a GPU stack, one
            trace on each device, which the single probes above found built), all of it timed here."""
            step = ProbeContext(model, task, 0, settings, INITS)
            for name in config.probes:
                PROBES.get(name)(step)
        with flushed_denormals():
            times[device, "one probe step"] = statistics.median(synced(probe_step, device) for _ in range(repeats))
    for name in [*names, "one probe step"]:
        cuda, cpu = times[devices[0], name], times[devices[-1], name]
        print(f"  {name:18s} cuda {cuda * 1e3:8.1f} ms, cpu {cpu * 1e3:8.1f} ms: cuda takes {cuda / cpu:.2f}x "
              f"the CPU's time (target <= 1)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="M up to 32, 5 updates, 2 repeats")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); run it on a "
              "machine with one", file=sys.stderr)
        return 2
    sizes, steps, repeats = ((1, 6, 32), 5, 2) if args.quick else ((1, 6, 32, 128), 10, 3)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}; T = 784, N = 100, "
          f"Adam, per-cell clipping; {steps} updates per timing, median of {repeats}")
    try:  # Triton's module: where it is missing, the per-step loop runs
        from rnn_dynamics.kernels.launch import device_target, dot_arithmetic, shared_memory_per_block

        target = device_target(torch.zeros(1, device="cuda"))
        ours = dot_arithmetic(torch.float32, target["gpu"])
        print(f"shared memory per program: {target['shared_memory'] >> 10} KB as the device reports it (the table "
              f"by compute capability {target['gpu']}: {shared_memory_per_block(target['gpu']) >> 10} KB)")
    except ImportError:
        ours = "the per-step loop's (no Triton)"
    print(f"float32 products: cuDNN's {cudnn_float32_products()} (torch's settings), this project's {ours} "
          "(rnn_dynamics.kernels.launch.dot_arithmetic)")
    for cell, (_, _, nonlinearity) in BASELINES.items():
        kernel = scan_kernel(cell, torch.zeros(1, device="cuda"), 100, nonlinearity)  # warns where it falls back
        print(f"0. {cell} ({nonlinearity}, float32, N = 100): "
              f"{'fused scan kernels' if kernel is not None else 'per-step loop'}")
    print("1. Elman stacks against M sequential cuDNN torch.nn.RNN runs")
    for batch in (16, 256):
        stack_against_cudnn("elman", sizes, batch, steps, repeats)
    print("2. LSTM and GRU stacks against M sequential cuDNN torch.nn.LSTM / torch.nn.GRU runs")
    for cell in ("lstm", "gru"):
        for batch in (16, 256):
            stack_against_cudnn(cell, sizes[:3], batch, steps, repeats)
    from rnn_dynamics.kernels import tuning  # Triton: only where the kernels ran

    print("   launch geometries the tuned kernels chose (rnn_dynamics.kernels.tuning):")
    for line in tuning.choices():
        print(f"     {line}")
    print("3. one probe call on a stack of 6 (T = 784, default probe settings)")
    probe_costs(repeats)
    cuda, cpu = study_time("cuda"), study_time("cpu")
    print(f"4. default study: cuda {cuda:.1f} s, cpu {cpu:.1f} s ({torch.get_num_threads()} threads): cuda takes "
          f"{cuda / cpu:.2f}x the CPU's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())

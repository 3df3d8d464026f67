"""Where a training update's time goes: torch.profiler over a few updates of one stack, by operator.

    python benchmarks/profile_update.py --cell elman --batch 256 --cells 32 --device cuda
    python benchmarks/profile_update.py --cell lstm --batch 16 --cells 1 --device cuda
    python benchmarks/profile_update.py --seq-len 100 --batch 16 --cells 6 --device cpu

The stack trains as bench_gpu.py's does (adding problem, N = 100, Adam, per-cell clipping, --probe-every 0):
one untimed update first (first-use checks, tuned launches, the allocator), then --steps updates under the
profiler. Prints the wall time per update and the operators with the most self time on the device (the CPU
where --device is cpu), --rows of them; the fused scan kernels show under their Triton names. The
question it answers for the GPU issue: what an update spends outside the recurrence.
"""

from __future__ import annotations

import argparse
import sys

import torch
from arguments import positive_int, present_device
from bench_gpu import inits_for, synced
from bench_spine import BASELINES, stack_training
from torch.profiler import ProfilerActivity, profile

from rnn_dynamics.tasks import make_task


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", default="elman", choices=sorted(BASELINES), help="cell type (default elman)")
    parser.add_argument("--batch", type=positive_int, default=256, help="sequences per update (default 256)")
    parser.add_argument("--cells", type=positive_int, default=32, help="cells in the stack, M (default 32)")
    parser.add_argument("--seq-len", type=positive_int, default=784, help="steps per sequence, T (default 784)")
    parser.add_argument("--steps", type=positive_int, default=3, help="profiled updates (default 3)")
    parser.add_argument("--rows", type=positive_int, default=20, help="operators printed (default 20)")
    parser.add_argument("--device", default="cuda", type=present_device, help="cuda, cuda:K or cpu (default cuda)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    _, _, nonlinearity = BASELINES[args.cell]
    task = make_task("adding", seq_len=args.seq_len, seed=0, batch_size=args.batch, preset="default")
    inits = inits_for(args.cells)

    def train(steps):
        return synced(lambda: stack_training(args.cell, nonlinearity, task, inits, steps, 100, args.device),
                      args.device)

    train(1)
    on_gpu = torch.device(args.device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        seconds = train(args.steps) / args.steps
    print(f"{args.cell} ({nonlinearity}), {args.cells} cells x batch {args.batch}, T = {args.seq_len}, N = 100, "
          f"{args.device}: {seconds * 1e3:.1f} ms per update under the profiler ({args.steps} updates, each "
          f"building its stack and optimiser)")
    sort_by = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=sort_by, row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())

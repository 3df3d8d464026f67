"""What each registered probe costs at one probe step, against the default probes together, in one process.

    python benchmarks/bench_probes.py                      # Elman stack of the default study's 6 inits, relu
    python benchmarks/bench_probes.py --cell lstm --nonlinearity tanh --seq-len 100

The stack's weights are moved off their initialisation (seeded noise of std --move), as training moves them: at
initialisation some probes have nothing to do (every fixed-point search of an IRNN ends where it starts). Each time
is the median of --repeats runs on a fresh probe context (its traced forward pass included, as in a study).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnn_dynamics.config import StudyConfig
from rnn_dynamics.jacobians import default_lags
from rnn_dynamics.models import get_cell
from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings, default_probes
from rnn_dynamics.seeding import generator_for
from rnn_dynamics.tasks import make_task


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", default="elman")
    p.add_argument("--nonlinearity", default="relu")
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--move", type=float, default=0.05, help="std of the noise added to every weight (default 0.05)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    config = StudyConfig()
    task = make_task("adding", seq_len=args.seq_len)
    model = get_cell(args.cell).from_inits(config.inits, task.input_size, args.hidden, task.output_size,
                                           args.nonlinearity)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(args.move * torch.randn(parameter.shape, generator=generator_for("bench_probes")))
    settings = ProbeSettings(tuple(default_lags(args.seq_len)), config.probe_batch)

    def cost(names: list[str]) -> float:
        def run():
            context = ProbeContext(model, task, 0, settings, config.inits)
            start = time.perf_counter()
            for name in names:
                PROBES.get(name)(context)
            return time.perf_counter() - start
        return statistics.median(run() for _ in range(args.repeats))

    print(f"{args.cell} ({args.nonlinearity}), stack of {len(config.inits)}, N = {args.hidden}, T = {args.seq_len}, "
          f"weights moved by N(0, {args.move}^2); torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats}")
    defaults = default_probes()
    baseline = cost(defaults)
    print(f"the default probes together ({', '.join(defaults)}): {baseline:.2f} s")
    for name, probe in PROBES.items():
        seconds = cost([name])
        print(f"  {name:22s} {'(default)' if probe.default else '(off by default)':17s} {seconds:6.2f} s = "
              f"{seconds / baseline:.2f}x the default probes")


if __name__ == "__main__":
    main()

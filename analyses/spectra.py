"""Train stacks of instrumented RNNs and record their spectra and Jacobians.

    python -m analyses.spectra                       # the embedded default study
    python -m analyses.spectra --seq-len 150 300 --inits identity gaussian:std=0.001 --steps 2000

With no arguments: the adding problem at T = 100, the six built-in init families
under ReLU and tanh, hidden 100, 300 Adam steps, probes every 50 steps; the dataset
goes to results/spectra.nc (the path is printed).
"""

from __future__ import annotations

import argparse
import sys

from rnn_dynamics.inits import DEFAULT_INITS, list_inits
from rnn_dynamics.nonlinearities import NONLINEARITIES
from rnn_dynamics.records import write_dataset
from rnn_dynamics.sweep import DTYPES, StudyConfig, run_study
from rnn_dynamics.tasks import list_tasks
from rnn_dynamics.train import OPTIMIZERS, TrainConfig

from .cli import check_writable, fail

DEFAULT_OUT = "results/spectra.nc"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analyses.spectra",
        description="Train stacks of RNN cells (one per init) and record eigen/singular spectra of W_hh, "
                    "Jacobian-product norms, gradient norms over time and losses into one netCDF dataset.",
    )
    p.add_argument("--task", default="adding", help=f"workload; one of: {', '.join(list_tasks())} (default adding)")
    p.add_argument("--seq-len", type=int, nargs="+", default=[100], metavar="T",
                   help="sequence length(s); several values add a seq_len dim (default 100)")
    p.add_argument("--inits", nargs="+", default=list(DEFAULT_INITS), metavar="SPEC",
                   help="recurrent inits as name or name:key=value[,key=value]; names: "
                        f"{', '.join(list_inits())} (default: the six families {' '.join(DEFAULT_INITS)})")
    p.add_argument("--nonlinearities", nargs="+", default=["relu", "tanh"], metavar="F",
                   help=f"one or more of: {', '.join(NONLINEARITIES)} (default relu tanh)")
    p.add_argument("--hidden", type=int, default=100, help="hidden units per layer (default 100)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--steps", type=int, default=300, help="optimizer updates (default 300)")
    p.add_argument("--batch-size", type=int, default=16, help="training minibatch size (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--optimizer", default="adam", help=f"one of: {', '.join(OPTIMIZERS)} (default adam)")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum for sgd and rmsprop (default 0.9)")
    p.add_argument("--clip", type=float, default=1.0,
                   help="per-cell gradient-norm clipping threshold; 0 disables it (default 1)")
    p.add_argument("--probe-every", type=int, default=50,
                   help="record every K updates (and at 0 and the end); 0 records nothing but losses "
                        "(default 50)")
    p.add_argument("--probe-batch", type=int, default=8,
                   help="test sequences used for Jacobian and gradient probes (default 8)")
    p.add_argument("--probe-test-size", type=int, default=256,
                   help="test sequences scored for test_loss/test_metric at each probe; 0 = the whole test set "
                        "(default 256)")
    p.add_argument("--all-lags", action="store_true",
                   help="record ||dh_T/dh_{T-k}|| at every lag k instead of ~30 log-spaced lags")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; each is a coordinate (default 0)")
    p.add_argument("--preset", default="default",
                   help="dataset sizes: tiny, default or paper (adding: 512/256, 10k/1k, 100k/10k)")
    p.add_argument("--input-std", type=float, default=0.001, help="std of input weights (default 0.001)")
    p.add_argument("--output-std", type=float, default=0.001, help="std of readout weights (default 0.001)")
    p.add_argument("--dtype", default="float32", help=f"one of: {', '.join(DTYPES)} (default float32)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    train = TrainConfig(steps=args.steps, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                        clip=args.clip, probe_every=args.probe_every)
    return StudyConfig(
        task=args.task, seq_len=args.seq_len, inits=args.inits, nonlinearities=args.nonlinearities,
        seeds=args.seeds, hidden=args.hidden, layers=args.layers, batch_size=args.batch_size,
        preset=args.preset, input_std=args.input_std, output_std=args.output_std, train=train,
        probe_batch=args.probe_batch, probe_test_size=args.probe_test_size, all_lags=args.all_lags, device=args.device, dtype=args.dtype,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args).validate()
        out = check_writable(args.out)
    except ValueError as err:
        fail(str(err))
    ds = run_study(config, progress=not args.quiet)
    path = write_dataset(ds, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

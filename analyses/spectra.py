"""Train stacks of instrumented RNNs and record their spectra, Jacobians and gradients.

    python -m analyses.spectra                       # the embedded default study
    python -m analyses.spectra --models paper --seq-len 150 --steps 10000
    python -m analyses.spectra --cells elman lstm gru --inits identity orthogonal --nonlinearities tanh

With no arguments: the adding problem at T = 50, Elman cells with the six built-in init
families under ReLU and tanh, hidden 100, 2000 Adam steps, probes every 100 steps; the
dataset goes to results/spectra.nc and a summary table is printed. Each finished stack
is kept in results/spectra.nc.parts/ until the dataset is written, so rerunning an
interrupted study with the same arguments runs only the stacks it had not finished.
"""

from __future__ import annotations

import sys

from rnn_dynamics.checkpoints import StackCheckpoints
from rnn_dynamics.commandline import fail
from rnn_dynamics.records import summary_table, write_dataset
from rnn_dynamics.sweep import check_resources, run_study

from .cli import check_writable, config_from_args, error_message, print_listings, study_parser

DEFAULT_OUT = "results/spectra.nc"


def build_parser():
    parser = study_parser("python -m analyses.spectra", __doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if print_listings(args):
        return 0
    try:
        config = config_from_args(args).validate()
        check_resources(config)
        out = check_writable(args.out)
    except ValueError as err:
        fail(error_message(err))
    checkpoints = StackCheckpoints(f"{out}.parts", config.to_dict())
    ds = run_study(config, progress=not args.quiet, checkpoints=checkpoints, report=print)
    path = write_dataset(ds, out)
    checkpoints.remove()
    print(summary_table(ds))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

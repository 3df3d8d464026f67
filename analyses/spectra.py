"""Train stacks of instrumented RNNs and record their spectra and Jacobians.

    python -m analyses.spectra                       # the embedded default study
    python -m analyses.spectra --seq-len 150 300 --inits identity gaussian:std=0.001 --steps 2000

With no arguments: the adding problem at T = 50, the six built-in init families
under ReLU and tanh, hidden 100, 2000 Adam steps, probes every 100 steps; the dataset
goes to results/spectra.nc (the path is printed). Each finished stack is kept in
results/spectra.nc.parts/ until the dataset is written, so rerunning an interrupted
study with the same arguments runs only the stacks it had not finished.
"""

from __future__ import annotations

import argparse
import sys

from rnn_dynamics.checkpoints import StackCheckpoints
from rnn_dynamics.inits import list_inits
from rnn_dynamics.nonlinearities import NONLINEARITIES
from rnn_dynamics.records import write_dataset
from rnn_dynamics.sweep import DTYPES, StudyConfig, run_study
from rnn_dynamics.tasks import list_tasks
from rnn_dynamics.train import OPTIMIZERS, TrainConfig

from .cli import check_writable, fail

DEFAULT_OUT = "results/spectra.nc"


def build_parser() -> argparse.ArgumentParser:
    d, t = StudyConfig(), TrainConfig()  # the defaults live in the config classes alone
    p = argparse.ArgumentParser(
        prog="python -m analyses.spectra",
        description="Train stacks of RNN cells (one per init) and record eigen/singular spectra of W_hh, "
                    "Jacobian-product norms, gradient norms over time and losses into one netCDF dataset.",
    )
    p.add_argument("--task", default=d.task, help=f"workload; one of: {', '.join(list_tasks())} (default {d.task})")
    p.add_argument("--seq-len", type=int, nargs="+", default=d.seq_len, metavar="T",
                   help=f"sequence length(s); several values add a seq_len dim (default {d.seq_len[0]})")
    p.add_argument("--inits", nargs="+", default=d.inits, metavar="SPEC",
                   help="recurrent inits as name or name:key=value[,key=value]; names: "
                        f"{', '.join(list_inits())} (default: the six families {' '.join(d.inits)})")
    p.add_argument("--nonlinearities", nargs="+", default=d.nonlinearities, metavar="F",
                   help=f"one or more of: {', '.join(NONLINEARITIES)} (default {' '.join(d.nonlinearities)})")
    p.add_argument("--hidden", type=int, default=d.hidden, help=f"hidden units per layer (default {d.hidden})")
    p.add_argument("--layers", type=int, default=d.layers, help=f"stacked recurrent layers (default {d.layers})")
    p.add_argument("--steps", type=int, default=t.steps, help=f"optimizer updates (default {t.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"training minibatch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=t.lr, help=f"learning rate (default {t.lr:g})")
    p.add_argument("--optimizer", default=t.optimizer, help=f"one of: {', '.join(OPTIMIZERS)} (default {t.optimizer})")
    p.add_argument("--momentum", type=float, default=t.momentum,
                   help=f"momentum for sgd and rmsprop (default {t.momentum:g})")
    p.add_argument("--clip", type=float, default=t.clip,
                   help=f"per-cell gradient-norm clipping threshold; 0 disables it (default {t.clip:g})")
    p.add_argument("--probe-every", type=int, default=t.probe_every,
                   help="record every K updates (and at 0 and the end); 0 records nothing but losses "
                        f"(default {t.probe_every})")
    p.add_argument("--probe-batch", type=int, default=d.probe_batch,
                   help=f"test sequences used for Jacobian and gradient probes (default {d.probe_batch})")
    p.add_argument("--probe-test-size", type=int, default=d.probe_test_size,
                   help="test sequences scored for test_loss/test_metric at each probe; 0 = the whole test set "
                        f"(default {d.probe_test_size})")
    p.add_argument("--all-lags", action="store_true",
                   help="record ||dh_T/dh_{T-k}|| at every lag k instead of ~30 log-spaced lags")
    p.add_argument("--lyapunov", action="store_true",
                   help="also record the Lyapunov spectrum (QR method) and the Benettin largest exponent "
                        "at every probe")
    p.add_argument("--lyapunov-warmup", type=int, default=d.lyapunov_warmup, metavar="STEPS",
                   help="steps discarded before exponents are accumulated (default T // 10)")
    p.add_argument("--lyapunov-reortho-every", type=int, default=d.lyapunov_reortho_every, metavar="K",
                   help=f"re-orthonormalise every K steps (default {d.lyapunov_reortho_every})")
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds, help="seeds; each is a coordinate (default 0)")
    p.add_argument("--preset", default=d.preset,
                   help="dataset sizes: tiny, default or paper (adding: 512/256, 10k/1k, 100k/10k)")
    p.add_argument("--input-std", type=float, default=d.input_std,
                   help=f"std of input weights (default {d.input_std:g})")
    p.add_argument("--output-std", type=float, default=d.output_std,
                   help=f"std of readout weights (default {d.output_std:g})")
    p.add_argument("--bias", type=float, default=d.bias,
                   help=f"initial recurrent-unit bias (default {d.bias:g}, as in the paper)")
    p.add_argument("--dtype", default=d.dtype, help=f"one of: {', '.join(DTYPES)} (default {d.dtype})")
    p.add_argument("--device", default=d.device, help=f"torch device: cpu, cuda or cuda:N (default {d.device})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    train = TrainConfig(steps=args.steps, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                        clip=args.clip, probe_every=args.probe_every)
    return StudyConfig(
        task=args.task, seq_len=args.seq_len, inits=args.inits, nonlinearities=args.nonlinearities,
        seeds=args.seeds, hidden=args.hidden, layers=args.layers, batch_size=args.batch_size,
        preset=args.preset, input_std=args.input_std, output_std=args.output_std, bias=args.bias, train=train,
        probe_batch=args.probe_batch, probe_test_size=args.probe_test_size, all_lags=args.all_lags,
        lyapunov=args.lyapunov, lyapunov_warmup=args.lyapunov_warmup,
        lyapunov_reortho_every=args.lyapunov_reortho_every, device=args.device, dtype=args.dtype,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args).validate()
        out = check_writable(args.out)
    except ValueError as err:
        fail(str(err))
    checkpoints = StackCheckpoints(f"{out}.parts", config.to_dict())
    ds = run_study(config, progress=not args.quiet, checkpoints=checkpoints)
    path = write_dataset(ds, out)
    checkpoints.remove()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train stacks of instrumented RNNs and record their spectra, Jacobians and gradients.

    python -m analyses.spectra                       # the embedded default study
    python -m analyses.spectra --models paper --seq-len 150 --steps 10000
    python -m analyses.spectra --cells elman lstm gru --inits identity orthogonal --nonlinearities tanh
    python -m analyses.spectra --seeds 0 1 2 3 --workers 2          # stacks on a local dask cluster
    python -m analyses.spectra --seeds 0 1 2 3 --scheduler tcp://head:8786   # on an existing one

With no arguments: the adding problem at T = 50, Elman cells with the six built-in init
families under ReLU and tanh, hidden 100, 2000 Adam steps, probes every 100 steps; the
dataset goes to results/spectra.nc and a summary table is printed. Each finished stack
is kept in results/spectra.nc.parts/ until the dataset is written, so rerunning an
interrupted study with the same arguments runs only the stacks it had not finished.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path

from rnn_dynamics.checkpoints import SNAPSHOT_EVERY, StackCheckpoints, check_snapshot_every
from rnn_dynamics.commandline import fail
from rnn_dynamics.records import read_dataset, summary_table, write_dataset

from .cli import (check_writable, config_from_args, error_message, explicit_flags, parse_command, study_parser,
                  thread_count)

DEFAULT_OUT = "results/spectra.nc"


def build_parser():
    parser = study_parser("python -m analyses.spectra", __doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its unfinished parts) even if it holds a study with another "
                             "configuration, or recompute it if it holds this one")
    add_execution_flags(parser)
    return parser


def add_execution_flags(parser) -> None:
    """--workers | --scheduler, --threads, --snapshot-every, --quiet: where and how the stacks run (read by
    executor_for and run_into)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, metavar="N",
                       help="run the stacks on a local dask.distributed cluster of N worker processes "
                            "(default 0: in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the stacks on an existing dask.distributed cluster, e.g. tcp://host:8786")
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N|auto",
                        help="torch threads per stack (default: 1 on dask workers, every core in-process; results "
                             "are bit-identical for equal counts); auto: in-process, 1 or every core, whichever a "
                             "few timed steps of the first stack find faster")
    parser.add_argument("--snapshot-every", type=float, default=SNAPSHOT_EVERY, metavar="SECONDS",
                        help="save a stack's training state every SECONDS of its training (beside the finished "
                             "stacks in OUT.parts/), so that the same command resumes a stack that died part way "
                             f"from there; 0: never (default {SNAPSHOT_EVERY:g})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
    """The config fields whose values differ, nested fields as train.steps."""
    names = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


def _later_defaults(saved: dict) -> dict:
    """The study fields a dataset written before they existed lacks, at their defaults: what it ran with."""
    from rnn_dynamics.config import StudyConfig

    fields = {field.name: field for field in dataclasses.fields(StudyConfig)}
    return {name: field.default_factory() if field.default is dataclasses.MISSING else field.default
            for name, field in fields.items() if name not in saved and name != "train"}


def check_out(out: Path, config: dict, overwrite: bool) -> bool:
    """Whether ``out`` already holds this study (True: nothing to run). Refuses (ValueError) an ``out``,
    or unfinished parts beside it, of another configuration unless ``overwrite``, which clears them."""
    parts = Path(f"{out}.parts")
    other_parts = [p for p in parts.glob("*") if p != StackCheckpoints(parts, config).folder] if parts.is_dir() else []
    if overwrite:
        for folder in other_parts:
            shutil.rmtree(folder, ignore_errors=True)
        return False
    if other_parts:
        raise ValueError(f"{parts} holds the unfinished stacks of another configuration; pass --overwrite to "
                         "discard them, or choose another --out")
    if not out.exists():
        return False
    try:
        saved = json.loads(read_dataset(out).attrs["config"])
    except (OSError, ValueError, KeyError):
        raise ValueError(f"--out {str(out)!r} exists and is not a study dataset; pass --overwrite to replace it") \
            from None
    saved = {**_later_defaults(saved), **saved}
    if saved == config:
        return True
    differ = ", ".join(_differences(saved, config)[:6])
    raise ValueError(f"--out {str(out)!r} holds a study with another configuration (it differs in: {differ}); "
                     "pass --overwrite to replace it, or choose another --out")


def executor_for(args, device: str = "cpu"):
    """The executor the flags ask for, as a context manager (a dask cluster is shut down afterwards); local
    workers of a study on ``cuda`` get one GPU each (:func:`rnn_dynamics.executors.worker_gpus`)."""
    from rnn_dynamics import executors
    from rnn_dynamics.kernels import kernel_mode

    kernel_mode()  # a bad RNN_DYNAMICS_KERNELS stops here, before anything runs (it is read in every forward)
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0 (0: in this process), got {args.workers}")
    check_snapshot_every(args.snapshot_every)  # before a cluster starts; StackCheckpoints checks it again
    if args.threads == executors.AUTO and (args.workers or args.scheduler):
        raise ValueError("--threads auto applies in-process only; dask workers need a number (default 1)")
    if args.workers:
        return executors.local_cluster(args.workers, args.threads, executors.worker_gpus(device, args.workers))
    if args.scheduler:
        return executors.remote_cluster(args.scheduler, args.threads)
    return nullcontext(executors.InProcess(args.threads))


def main(argv: list[str] | None = None) -> int:
    parsed = parse_command(argv, build_parser)
    if parsed is None:
        return 0
    argv, parser, args = parsed
    from rnn_dynamics.sweep import check_disk, check_resources

    with ExitStack() as cleanup:
        try:
            config = config_from_args(args, explicit_flags(parser, argv)).validate()
            out = check_writable(args.out)
            if check_out(out, config.to_dict(), args.overwrite):
                print(summary_table(read_dataset(out)))
                print(f"{out} already holds this study: nothing to run (--overwrite recomputes it)")
                return 0
            executor = cleanup.enter_context(executor_for(args, config.device))
            check_resources(config, executor.available_bytes(config))
            check_disk(config, out)
        except ValueError as err:
            fail(error_message(err))
        path = run_into(out, config, executor, args.quiet, args.snapshot_every)
    print(f"wrote {path}")
    return 0


def run_into(out: Path, config, executor, quiet: bool, snapshot_every: float = SNAPSHOT_EVERY) -> Path:
    """Run the study into ``out`` through its stack checkpoints (resuming the stacks an earlier run
    finished, and those it had snapshots of from there), write it, drop the checkpoints and print its summary
    table."""
    from rnn_dynamics.sweep import run_study

    checkpoints = StackCheckpoints(f"{out}.parts", config.to_dict(), snapshot_every)
    checkpoints.clear_temporary()
    ds = run_study(config, progress=not quiet, checkpoints=checkpoints, report=print, executor=executor)
    path = write_dataset(ds, out)
    checkpoints.remove()
    print(summary_table(ds))
    return path


if __name__ == "__main__":
    sys.exit(main())

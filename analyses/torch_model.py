"""Probe networks you trained with torch.nn: spectra, Jacobians, Lyapunov exponents and fixed points of saved weights.

    python -m analyses.torch_model run1.pt run2.pt --nonlinearity relu --readout fc --task adding --seq-len 150
    python -m analyses.torch_model lstm.pt --readout decoder --task npz --file my_sequences.npz
    python -m analyses.torch_model model.pt --module encoder.rnn --nonlinearity tanh --probes default fixed_points

Each WEIGHTS.pt is what torch.save wrote of a model's state_dict, or of a checkpoint dict that holds one (read with
weights_only: nothing in it is executed). Its recurrent module (torch.nn.RNN, LSTM, GRU or a ...Cell) is found
by its tensors' names and shapes; every file must hold one of one type and shape, and each becomes one cell of a
stack (its name, the file's stem, is its coordinate of the init dim). The probes run once, in float64, on the
task's probe and test sequences, at each --seq-len and --seeds, and the dataset has the studies' schema (with
step 0 only): `python -m figures OUT` draws its spectral figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail
from rnn_dynamics.config import StudyConfig
from rnn_dynamics.records import write_dataset

from .cli import (add_fields, add_listing_flags, add_plugin_options, check_writable, error_message, explicit_flags,
                  load_requested_plugins, plugin_option_values, print_listings)

DEFAULT_OUT = "results/torch_model.nc"
#: The study settings this command reads: the task, the probes and their sizes.
FIELDS = ("task", "seq_len", "seeds", "preset", "data_dir", "probes", "probe_batch", "probe_test_size", "all_lags",
          "lyapunov", "lyapunov_warmup", "lyapunov_reortho_every", "plugins")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m analyses.torch_model", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", metavar="WEIGHTS.pt",
                        help="state_dict files torch.save wrote, one per network")
    parser.add_argument("--names", nargs="+", default=None, metavar="NAME",
                        help="a name per file, its coordinate of the init dim (default: the files' stems)")
    parser.add_argument("--module", default=None, metavar="PREFIX",
                        help="the recurrent module's name in the state_dict, e.g. rnn or encoder.rnn (default: the "
                             "one there is)")
    parser.add_argument("--readout", default=None, metavar="PREFIX",
                        help="the nn.Linear that reads the top layer's h, e.g. fc (default: none; the probes that "
                             "read the network's output are then left out)")
    parser.add_argument("--nonlinearity", default=None, metavar="relu|tanh",
                        help="the nonlinearity of a torch.nn.RNN or RNNCell, which its state_dict does not record")
    add_fields(parser, StudyConfig, FIELDS)
    for action in parser._actions:  # here a preset sizes the task's data only: nothing is trained
        if action.dest == "preset":
            action.help = "the task's dataset sizes: tiny, default, quick, paper (--list-tasks shows each; " \
                          "default: default)"
    add_plugin_options(parser, ["task"])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    add_listing_flags(parser, ["tasks", "probes"])
    return parser


def _names(args) -> list[str]:
    names = args.names or [Path(path).stem for path in args.files]
    if len(names) != len(args.files):
        raise ValueError(f"--names gives {len(names)} names for {len(args.files)} files: give one per file")
    if len(set(names)) != len(names):
        given = "--names" if args.names else "the files' stems"
        raise ValueError(f"{given} repeat a name ({', '.join(names)}): give distinct --names")
    return names


def _probes(asked: list[str] | None, readout: str | None) -> list[str]:
    """The probes to run: those ``asked`` (None: the default ones), less, where the network is held without its
    readout, those that read its output (where ``default`` brings them; named ones are refused)."""
    from rnn_dynamics.probes import PROBES, default_probes

    asked = asked or ["default"]
    if readout is not None:
        return asked
    needing = [name for name in asked if name in PROBES.names() and PROBES.get(name).reads_output]
    if needing:
        raise ValueError(f"--probes {', '.join(needing)}: these read the network's output; give --readout, the "
                         "nn.Linear on its top layer")
    return [name for given in asked
            for name in ([p for p in default_probes() if not PROBES.get(p).reads_output] if given == "default"
                         else [given])]


def study_config(args, names: list[str], probes_given: bool):
    """The study configuration of the flags, for networks named ``names`` (validated: the task and probes)."""
    values = {name: getattr(args, name) for name in FIELDS}
    values["probes"] = _probes(values["probes"] if probes_given else None, args.readout)
    return StudyConfig(**values, task_options=plugin_option_values(args)["task_options"], inits=names,
                       dtype="float64").validate_probing()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    load_requested_plugins(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if print_listings(args):
        return 0
    if not args.files:
        parser.error("give at least one WEIGHTS.pt file")
    from figures.summary import summary_table
    from rnn_dynamics.state_dicts import stack_from_files
    from rnn_dynamics.sweep import probe_study

    try:
        out = check_writable(args.out)
        names = _names(args)
        config = study_config(args, names, "probes" in explicit_flags(parser, argv))
        task = config.build_task(config.seq_len[0], config.seeds[0], train_size=1, test_size=1)
        model = stack_from_files(args.files, module=args.module, readout=args.readout,
                                 nonlinearity=args.nonlinearity, stack_readout=task.readout)
        config = dataclasses.replace(config, cells=[model.cell_type], nonlinearities=[model.nonlinearity],
                                     hidden=model.hidden_size, layers=model.num_layers)
        ds = probe_study(config, model)
    except ValueError as err:
        fail(error_message(err))
    ds.attrs.update(trained_elsewhere=", ".join(f"{name}: {Path(path).resolve()} (sha256 {_sha256(path)})"
                                                for name, path in zip(names, args.files)),
                    recurrent_module=args.module or "", readout_module=args.readout or "")
    path = write_dataset(ds, out)
    ds.attrs["source_file"] = path.stem
    print(summary_table(ds).markdown())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

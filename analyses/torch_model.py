"""Probe networks you trained with torch.nn: spectra, Jacobians, Lyapunov exponents and fixed points of saved weights.

    python -m analyses.torch_model run1.pt run2.pt --nonlinearity relu --readout fc --task adding --seq-len 150
    python -m analyses.torch_model lstm.pt --readout decoder --task npz --file my_sequences.npz
    python -m analyses.torch_model model.pt --module encoder.rnn --nonlinearity tanh --probes default fixed_points
    python -m analyses.torch_model checkpoints/irnn_*.pt checkpoints/he_*.pt --steps-from-stems --nonlinearity relu
    python -m analyses.torch_model lm.pt --task ptb --embedding embed --vocabulary vocab.txt --readout decoder

Each WEIGHTS.pt is what torch.save wrote of a model's state_dict, or of a checkpoint dict that holds one (read with
weights_only: nothing in it is executed), or a safetensors file of a state_dict. Its recurrent module (torch.nn.RNN,
LSTM, GRU or a ...Cell) is found by its tensors' names and shapes; every file must hold one of one type and shape.
Each network is one cell of a stack (its name, by default the file's stem, is its coordinate of the init dim);
checkpoints of the networks along their training (--steps, --steps-from-stems) are the probe steps, the first one's
weights the initial ones. The probes run in float64 on the task's probe and test sequences, at each --seq-len and
--seeds, and the dataset has the studies' schema: `python -m figures OUT` draws its figures.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail
from rnn_dynamics.config import StudyConfig
from rnn_dynamics.data.fetch import sha256_of
from rnn_dynamics.records import write_dataset

from .cli import (add_fields, add_listing_flags, add_plugin_options, check_writable, error_message, explicit_flags,
                  parse_command, plugin_option_values)

DEFAULT_OUT = "results/torch_model.nc"
#: The study settings this command reads: the task, the probes and their sizes.
FIELDS = ("task", "seq_len", "seeds", "preset", "data_dir", "probes", "probe_batch", "probe_test_size", "all_lags",
          "lyapunov", "lyapunov_warmup", "lyapunov_reortho_every", "fixed_point_input", "plugins")


#: The flags that say what to read from each file: flag -> (metavar, help); each defaults to None.
WHAT_TO_READ = {
    "--module": ("PREFIX", "the recurrent module's name in the state_dict, e.g. rnn or encoder.rnn (default: the one "
                           "there is)"),
    "--readout": ("PREFIX", "the nn.Linear that reads the top layer's h, e.g. fc (default: none; the probes that read "
                            "the network's output are then left out)"),
    "--embedding": ("PREFIX", "an nn.Embedding that feeds the recurrent module (a language model's), folded into its "
                              "input weights; needs --vocabulary and a task of tokens (ptb)"),
    "--vocabulary": ("FILE", "the tokens of the embedding's rows (and the readout's outputs), one per line in their "
                             "order; the same set as the task's vocabulary"),
    "--nonlinearity": ("relu|tanh", "the nonlinearity of a torch.nn.RNN or RNNCell, which its state_dict does not "
                                    "record"),
}


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m analyses.torch_model", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", metavar="WEIGHTS.pt",
                        help="state_dict files torch.save or safetensors wrote, one per network")
    parser.add_argument("--names", nargs="+", default=None, metavar="NAME",
                        help="a name per file, its coordinate of the init dim (default: the files' stems); one name "
                             "may repeat at different --steps")
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--steps", nargs="+", type=int, default=None, metavar="STEP",
                       help="the training step of each file (default: 0 for all): checkpoints of one network along "
                            "its training, each a coordinate of the step dim")
    steps.add_argument("--steps-from-stems", action="store_true",
                       help="read each file's network and step from its stem, a name followed by the step: "
                            "irnn_300.pt, irnn-step300.pt")
    for name, (metavar, text) in WHAT_TO_READ.items():
        parser.add_argument(name, default=None, metavar=metavar, help=text)
    add_fields(parser, StudyConfig, FIELDS)
    for action in parser._actions:  # here a preset sizes the task's data only: nothing is trained
        if action.dest == "preset":
            action.help = "the task's dataset sizes: tiny, default, quick, paper (--list-tasks shows each; " \
                          "default: default)"
    add_plugin_options(parser, ["task"])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output netCDF path (default {DEFAULT_OUT})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_listing_flags(parser, ["tasks", "probes"])
    return parser


#: A file stem that ends in its training step: irnn_300, irnn-step300, irnn.300 (the network irnn, step 300).
_STEM_WITH_STEP = re.compile(r"(?P<name>.*?)(?:[-_.]?step)?[-_.]?(?P<step>\d+)")


def checkpoint_grid(args) -> tuple[list[str], dict[int, list[str]]]:
    """The networks' names (their coordinates of the init dim) and, per training step, their files in that order:
    every network at every step. ValueError in one line where the files, --names and --steps do not make one."""
    files = [str(path) for path in args.files]
    stems = [Path(path).stem for path in files]
    steps = args.steps or [0] * len(files)
    if args.steps_from_stems:
        matches = [_STEM_WITH_STEP.fullmatch(stem) for stem in stems]
        for stem, match in zip(stems, matches):
            if match is None or not match["name"]:
                raise ValueError(f"--steps-from-stems: the stem {stem!r} is not a name followed by its step, "
                                 "as in irnn_300.pt")
        stems, steps = [match["name"] for match in matches], [int(match["step"]) for match in matches]
    names = args.names or stems
    for flag, given in (("--names", names), ("--steps", steps)):
        if len(given) != len(files):
            raise ValueError(f"{flag} gives {len(given)} values for {len(files)} files: give one per file")
    if min(steps) < 0:
        raise ValueError(f"--steps must be >= 0, got {min(steps)}")
    file_of = {}
    for name, step, path in zip(names, steps, files):
        if (name, step) in file_of:
            raise ValueError(f"{name!r} at step {step} is given twice ({file_of[name, step]}, {path}): give distinct "
                             "--names, or --steps")
        file_of[name, step] = path
    order = list(dict.fromkeys(names))
    for step in sorted(set(steps)):
        for name in order:
            if (name, step) not in file_of:
                raise ValueError(f"no file of {name!r} at step {step}: give every network at every step")
    return order, {step: [file_of[name, step] for name in order] for step in sorted(set(steps))}


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


def _token_order(args, task) -> list[int] | None:
    """Where --embedding feeds the network: each task token's row in it, from --vocabulary."""
    from rnn_dynamics.state_dicts import token_order

    if (args.embedding is None) != (args.vocabulary is None):
        raise ValueError("--embedding and --vocabulary go together: the embedding's rows, and the tokens they hold")
    if args.embedding is None:
        return None
    if not hasattr(task, "vocabulary"):
        raise ValueError(f"--embedding needs a task of tokens with a vocabulary (ptb), not {args.task!r}")
    return token_order(args.vocabulary, list(task.vocabulary))


def _one_shape(models: dict) -> object:
    """The first step's stack, where every step's holds modules of its type and sizes; ValueError otherwise."""
    def shape(stack):
        return type(stack).__name__, stack.nonlinearity, tuple(p.shape for p in stack.parameters())

    first_step, first = next(iter(models.items()))
    for step, stack in models.items():
        if shape(stack) != shape(first):
            raise ValueError(f"the files of step {step} hold {shape(stack)[:2]} modules of other sizes or type than "
                             f"those of step {first_step} {shape(first)[:2]}: one network's checkpoints share a shape")
    return first


def main(argv: list[str] | None = None) -> int:
    parsed = parse_command(argv, build_parser)
    if parsed is None:
        return 0
    argv, parser, args = parsed
    if not args.files:
        parser.error("give at least one WEIGHTS.pt file")
    from figures.common import unready
    from figures.summary import FIGURE, summary_table
    from rnn_dynamics.state_dicts import stack_from_files
    from rnn_dynamics.sweep import probe_study

    try:
        out = check_writable(args.out)
        names, files = checkpoint_grid(args)
        config = study_config(args, names, "probes" in explicit_flags(parser, argv))
        task = config.build_task(config.seq_len[0], config.seeds[0], train_size=1, test_size=1)
        order = _token_order(args, task)
        models = {step: stack_from_files(paths, module=args.module, readout=args.readout,
                                         nonlinearity=args.nonlinearity, stack_readout=task.readout,
                                         embedding=args.embedding, order=order)
                  for step, paths in files.items()}
        model = _one_shape(models)
        config = dataclasses.replace(config, cells=[model.cell_type], nonlinearities=[model.nonlinearity],
                                     hidden=model.hidden_size, layers=model.num_layers)
        ds = probe_study(config, models, progress=not args.quiet)
    except ValueError as err:
        fail(error_message(err))
    ds.attrs.update(trained_elsewhere=", ".join(f"{name} at step {step}: {Path(path).resolve()} (sha256 "
                                                f"{sha256_of(Path(path))})" for step, paths in files.items()
                                                for name, path in zip(names, paths)),
                    recurrent_module=args.module or "", readout_module=args.readout or "")
    path = write_dataset(ds, out)
    ds.attrs["source_file"] = path.stem
    if unready(ds, FIGURE) is None:  # the table needs the default probes' spectra and Jacobian norms
        print(summary_table(ds).markdown())
    print(f"wrote {path}: {', '.join(ds.data_vars)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command lines generated from the config dataclasses, one-line errors, output checks.

Every field of :class:`~rnn_dynamics.config.StudyConfig` (and of its nested
:class:`~rnn_dynamics.config.TrainConfig`) becomes a flag named after it (``seq_len`` ->
``--seq-len``) with the field's default and help text; every option a registered cell
type declares becomes a flag too (the LSTM's ``forget_bias`` -> ``--forget-bias``). So
names, defaults and help live in one place, and a library error naming a field is
reported under its flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import tempfile
import types
import typing
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser
from rnn_dynamics.config import ConfigError, StudyConfig, TrainConfig
from rnn_dynamics.inits import describe_inits
from rnn_dynamics.models import CELLS
from rnn_dynamics.nonlinearities import NONLINEARITIES
from rnn_dynamics.optimizers import OPTIMIZERS
from rnn_dynamics.paper import MODELS
from rnn_dynamics.probes import PROBES
from rnn_dynamics.registry import first_line
from rnn_dynamics.tasks import TASKS


def flag(name: str) -> str:
    """The command-line flag of a config field or cell option."""
    return "--" + name.replace("_", "-")


def _describe_default(value) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _add_fields(parser: argparse.ArgumentParser, config_cls) -> None:
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            _add_fields(parser, kind)
            continue
        if field.name == "cell_options":  # one flag per option a cell type declares, below
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        meta = field.metadata
        text = meta["help"]
        if meta.get("names"):
            text += f"; {'any of' if isinstance(default, list) else 'one of'}: {', '.join(meta['names']())}"
        if kind is bool:
            parser.add_argument(flag(field.name), action="store_true", help=text)
            continue
        if default is not None or "default" not in text:
            text += f" (default: {_describe_default(default)})"
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        options = {"default": default, "help": text, "metavar": meta.get("metavar")}
        if origin is list:
            options.update(nargs="+", type=args[0])
        elif origin in (typing.Union, types.UnionType):
            options.update(type=next(a for a in args if a is not type(None)))
        else:
            options.update(type=kind)
        parser.add_argument(flag(field.name), **options)


def _add_cell_options(parser: argparse.ArgumentParser) -> None:
    for cell, cls in CELLS.items():
        for name, option in cls.options.items():
            parser.add_argument(flag(name), type=option.kind, default=None,
                                help=f"{option.help} (cell {cell}; default {option.default:g})")


#: ``--list-NAME`` flags: what each prints, one line per registered plug-in.
def _listings() -> dict[str, typing.Callable[[], list[str]]]:
    def signature_defaults(fn):
        params = inspect.signature(fn).parameters.values()
        return ", ".join(f"{p.name}={p.default!r}" for p in params if p.default is not p.empty)

    return {
        "inits": lambda: [f"{name}({params}): {doc}" for name, params, doc in describe_inits()],
        "cells": lambda: [f"{name}: {first_line(cls)} {cls.describe()}" for name, cls in CELLS.items()],
        "models": lambda: [f"{name}: {model.describe()}" for name, model in MODELS.items()]
        + ["paper: all four of irnn, rnn_tanh, rnn_relu, lstm"],
        "tasks": lambda: [f"{name}({signature_defaults(fn)}): {first_line(fn)}" for name, fn in TASKS.items()],
        "probes": lambda: [f"{name}{'' if probe.default else ' (off by default)'}: {', '.join(probe.variables)}"
                           for name, probe in PROBES.items()],
        "nonlinearities": lambda: [f"{name}: {first_line(obj)}" for name, obj in NONLINEARITIES.items()],
        "optimizers": lambda: [f"{name}: {first_line(fn)}" for name, fn in OPTIMIZERS.items()],
    }


def study_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with one flag per config field and cell option, plus the ``--list-*`` flags."""
    parser = OneLineParser(prog=prog, description=description)
    _add_fields(parser, StudyConfig)
    _add_cell_options(parser)
    for name in _listings():
        parser.add_argument(flag(f"list_{name}"), action="store_true",
                            help=f"list the registered {name} with their parameters and defaults, then exit")
    return parser


def print_listings(args: argparse.Namespace) -> bool:
    """Print what the ``--list-*`` flags asked for; True if any was given."""
    asked = [name for name in _listings() if getattr(args, f"list_{name}")]
    for name in asked:
        print("\n".join(_listings()[name]()))
    return bool(asked)


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The study configuration the parsed flags describe."""
    values = vars(args)
    train = TrainConfig(**{f.name: values[f.name] for f in dataclasses.fields(TrainConfig)})
    study = {f.name: values[f.name] for f in dataclasses.fields(StudyConfig) if f.name not in ("train", "cell_options")}
    options = {name: values[name] for _, cls in CELLS.items() for name in cls.options if values.get(name) is not None}
    return StudyConfig(**study, cell_options=options, train=train)


def error_message(err: ValueError) -> str:
    """A library error as the command line says it: a ConfigError under its field's flag."""
    return f"{flag(err.field)} {err.message}" if isinstance(err, ConfigError) else str(err)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (ValueError) if ``path`` cannot be written, without creating anything."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a directory; give a file path such as {path / 'study.nc'}")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {str(path)!r} is not writable: {str(ancestor)!r} is not a directory")
    try:  # os.access is no guide for root; create (and at once delete) a probe file instead
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(path)!r} is not writable: {err.strerror} in {str(ancestor)!r}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--out {str(path)!r} is not writable (no write permission)")
    return path

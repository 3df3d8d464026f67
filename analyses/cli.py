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
import os
import sys
import tempfile
import types
import typing
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail
from rnn_dynamics.config import ConfigError, StudyConfig, TrainConfig
from rnn_dynamics.inits import describe_inits
from rnn_dynamics.models import CELLS
from rnn_dynamics.nonlinearities import NONLINEARITIES
from rnn_dynamics.optimizers import OPTIMIZERS
from rnn_dynamics.paper import MODELS, PAPER
from rnn_dynamics.plugins import EntryPointError, load_plugins
from rnn_dynamics.probes import PROBES
from rnn_dynamics.registry import summary
from rnn_dynamics.tasks import TASKS


def thread_count(text: str) -> int | str:
    """``--threads``: a positive integer, or ``auto`` (timed choice, in-process only)."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}")
    return count


def flag(name: str) -> str:
    """The command-line flag of a config field or cell option."""
    return "--" + name.replace("_", "-")


def _describe_default(value) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def add_fields(parser: argparse.ArgumentParser, config_cls, only: typing.Collection[str] | None = None) -> None:
    """One flag per field of ``config_cls`` (and of its nested configs), or per field named in ``only``."""
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            add_fields(parser, kind, only)
            continue
        if only is not None and field.name not in only:
            continue
        if kind is dict:  # cell_options, task_options: one flag per option a plug-in declares, below
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


#: Plug-in registries whose members declare options, and the config field their values go to.
PLUGIN_OPTIONS = {"cell": (CELLS, "cell_options"), "task": (TASKS, "task_options")}


def add_plugin_options(parser: argparse.ArgumentParser, kinds: typing.Collection[str] = tuple(PLUGIN_OPTIONS)) -> None:
    """One flag per option the registered plug-ins of ``kinds`` (cell, task) declare."""
    for kind in kinds:
        registry = PLUGIN_OPTIONS[kind][0]
        for owner, cls in registry.items():
            for name, option in cls.options.items():
                choices = f"; one of: {', '.join(map(str, option.choices))}" if option.choices else ""
                parser.add_argument(flag(name), type=option.kind, default=None, metavar=name.upper(),
                                    help=f"{option.help} ({kind} {owner}{choices}; default {option.default!r})")


#: ``--list-NAME`` flags: what each prints, one line per registered plug-in.
def _listings() -> dict[str, typing.Callable[[], list[str]]]:
    def describe_task(name, cls):
        options = "".join(f"; {flag(option)} (default {spec.default!r})"
                          for option, spec in cls.options.items())
        presets = "; ".join(f"{preset}: {p.description or 'sizes ' + str(p.sizes)}"
                            for preset, p in cls.presets.items())
        length = "the data's" if cls.default_seq_len is None else cls.default_seq_len
        return f"{name}: {summary(cls)} Default seq_len {length}{options}. Presets: {presets}"

    def describe_probe(name, probe):
        module = sys.modules.get(probe.__module__)  # a probe's file docstring describes it where it has none
        what = summary(probe) or (summary(module) if module else "")
        return (f"{name}{'' if probe.default else ' (off by default)'}: {what + ' ' if what else ''}"
                f"Variables: {', '.join(probe.variables)}")

    return {
        "inits": lambda: [f"{name}({params}): {doc}" for name, params, doc in describe_inits()],
        "cells": lambda: [f"{name}: {summary(cls)} {cls.describe()}" for name, cls in CELLS.items()],
        "models": lambda: [f"{name}: {model.describe()}" for name, model in MODELS.items()]
        + [f"paper: all four of {', '.join(PAPER)}"],
        "tasks": lambda: [describe_task(name, cls) for name, cls in TASKS.items()],
        "probes": lambda: [describe_probe(name, probe) for name, probe in PROBES.items()],
        "nonlinearities": lambda: [f"{name}: {summary(obj)}" for name, obj in NONLINEARITIES.items()],
        "optimizers": lambda: [f"{name}: {summary(fn)}" for name, fn in OPTIMIZERS.items()],
    }


def load_requested_plugins(argv: list[str]) -> None:
    """Import the plug-ins ``--plugins`` names in ``argv`` (and installed packages' ones) before the parser is
    built, so that their names are valid, listed and their options are flags; exit 2 in one line on a bad one."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument(flag("plugins"), nargs="*", default=[])
    try:
        load_plugins(early.parse_known_args(argv)[0].plugins)
    except EntryPointError as err:  # not a name the command line gave
        fail(str(err))
    except ValueError as err:
        fail(f"{flag('plugins')} {err}")


def study_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with one flag per config field and cell option, plus the ``--list-*`` flags."""
    parser = OneLineParser(prog=prog, description=description)
    add_fields(parser, StudyConfig)
    add_plugin_options(parser)
    add_listing_flags(parser)
    return parser


def add_listing_flags(parser: argparse.ArgumentParser, names: typing.Collection[str] | None = None) -> None:
    """The ``--list-*`` flags (read by :func:`print_listings`): of every registry, or of those in ``names``."""
    for name in names or _listings():
        parser.add_argument(flag(f"list_{name}"), action="store_true",
                            help=f"list the registered {name} with their parameters and defaults, then exit")


def parse_command(argv: list[str] | None, build_parser) -> tuple[list[str], argparse.ArgumentParser,
                                                                  argparse.Namespace] | None:
    """(argv, parser, args) of a command line (``sys.argv`` where ``argv`` is None) whose ``--plugins`` are imported
    before ``build_parser()`` runs; None where a ``--list-*`` flag printed what it asked for (nothing else to do)."""
    argv = sys.argv[1:] if argv is None else argv
    load_requested_plugins(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    return None if print_listings(args) else (argv, parser, args)


def print_listings(args: argparse.Namespace) -> bool:
    """Print what the ``--list-*`` flags asked for; True if any was given."""
    asked = [name for name in _listings() if getattr(args, f"list_{name}", False)]
    for name in asked:
        print("\n".join(_listings()[name]()))
    return bool(asked)


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options ``argv`` gives (as opposed to those left at their defaults)."""
    given = set()
    for action in parser._actions:
        for option in action.option_strings:
            if any(arg == option or arg.startswith(option + "=") for arg in argv):
                given.add(action.dest)
    return given


def plugin_option_values(args: argparse.Namespace) -> dict[str, dict]:
    """{config field (cell_options, task_options): the options the flags give}."""
    values = vars(args)
    return {field: {name: values[name] for _, cls in registry.items() for name in cls.options
                    if values.get(name) is not None}
            for registry, field in PLUGIN_OPTIONS.values()}


def config_from_args(args: argparse.Namespace, explicit: set[str] | None = None) -> StudyConfig:
    """The study configuration the parsed flags describe. With a preset other than ``default``, the
    preset's settings fill every field whose flag is not in ``explicit``."""
    values = vars(args)
    options = plugin_option_values(args)
    train_fields = [f.name for f in dataclasses.fields(TrainConfig)]
    study_fields = [f.name for f in dataclasses.fields(StudyConfig) if f.name not in ("train", *options)]
    if args.preset != "default" and explicit is not None:
        given = {name: values[name] for name in [*study_fields, *train_fields] if name in explicit}
        given.pop("task", None), given.pop("preset", None)
        return StudyConfig.from_preset(args.task, args.preset, **given, **options)
    train = TrainConfig(**{name: values[name] for name in train_fields})
    return StudyConfig(**{name: values[name] for name in study_fields}, **options, train=train)


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

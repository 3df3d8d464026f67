"""Plug-ins that live outside this package: a user's own modules and files, and installed packages.

A plug-in module registers what it defines when imported (``@register_init``, ``@register_cell``,
``@register_probe``, ``@register_task``, ``register_nonlinearity``, ``MODELS.add``). Two ways bring one in:

- a study's ``plugins`` (``--plugins``): importable module names or paths of ``.py`` files, imported in the
  process that builds the study and again in every process that runs its stacks (dask workers included);
- an installed package that declares an entry point in the group ``rnn_dynamics.plugins``
  (``[project.entry-points."rnn_dynamics.plugins"] mine = "my_package.rnn_plugins"``), imported once per
  process the first time plug-ins are loaded, as xarray finds its backends.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import zlib
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "rnn_dynamics.plugins"

_entry_points_loaded = False


class EntryPointError(ValueError):
    """An installed package's plug-in failed on import (not one the study named)."""


def load_plugins(names=()) -> None:
    """Import the installed packages' plug-ins (once per process), then each of ``names`` not yet imported;
    ValueError in one line naming the plug-in that is missing or failed."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            _import(f"installed plug-in {point.name!r} (entry point {point.value} in group {ENTRY_POINT_GROUP})",
                    point.load, EntryPointError)
    for name in names:
        if _is_file(name):
            path = Path(plugin_path(name))
            if path.suffix != ".py" or not path.is_file():
                raise ValueError(f"{name!r}: no such .py file ({path}); give a .py file or an importable module")
            _import(repr(name), lambda path=path: _import_file(path))
        else:
            if not _module_exists(name):
                raise ValueError(f"{name!r}: no module of that name; give an importable module or a .py file")
            _import(repr(name), lambda name=name: importlib.import_module(name))


def _is_file(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or an empty or relative name
        return False


def plugin_path(name: str) -> str:
    """``name`` as a study records it: a ``.py`` file's absolute path (what every worker process opens), a
    module's name as given."""
    return str(Path(name).expanduser().resolve()) if _is_file(name) else name


def _import_file(path: Path):
    module_name = f"rnn_dynamics_plugin_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # its classes and functions pickle by reference, as a dask worker needs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _import(what: str, load, error: type[ValueError] = ValueError) -> None:
    try:
        load()
    except Exception as err:  # a plug-in's own error: a dependency missing, a name registered twice, ...
        message = str(err).splitlines()[0] if str(err) else ""
        raise error(f"{what} failed on import: {type(err).__name__}: {message}") from None

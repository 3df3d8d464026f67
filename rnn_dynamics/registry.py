"""A name -> object registry with the project's error messages, and plug-in discovery.

Inits, nonlinearities, optimizers, dtypes, cell types, named models, probes and tasks
each keep one :class:`Registry`. Packages of plug-ins (``models/``, ``probes/``,
``tasks/``) import every module in their folder with :func:`import_submodules`, so a new
plug-in is one new file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one ``kind`` (e.g. "init") found by name; a wrong name lists the valid ones."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._items: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator adding the decorated object under ``name``."""

        def decorate(item: T) -> T:
            self.add(name, item, overwrite=overwrite)
            return item

        return decorate

    def add(self, name: str, item: T, *, overwrite: bool = False) -> T:
        """Add ``item`` under ``name`` (the non-decorator form)."""
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent): for tests and interactive sessions."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, object) pairs sorted by name."""
        for name in self.names():
            yield name, self._items[name]

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(self.names())}") from None


@dataclass(frozen=True)
class Option:
    """A setting a plug-in declares (the LSTM's forget bias, PTB's level): default, type, help, valid values.

    Each becomes a command-line flag named after it; a study passes the values to the plug-ins
    that declare them.
    """

    default: object
    help: str
    kind: type = float
    choices: tuple | None = None

    def parse(self, name: str, value):
        """``value`` checked against the type and the choices; ValueError naming ``name`` otherwise."""
        try:
            if self.kind in (int, float) and isinstance(value, bool):
                raise ValueError
            converted = self.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a {self.kind.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"{name} {converted!r} is not valid; valid: {', '.join(map(str, self.choices))}")
        return converted


def parse_options(owner: str, declared: dict[str, Option], given: dict) -> dict:
    """Every option ``owner`` (e.g. "cell 'lstm'") declares, from ``given`` or its default, checked;
    ValueError naming the first unknown or bad one."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(declared) or "none"
        raise ValueError(f"{owner} has no option {unknown[0]!r}; its options: {valid}")
    return {name: option.parse(name, given.get(name, option.default)) for name, option in declared.items()}


def import_submodules(package_name: str, package_path, skip: tuple[str, ...] = ("base",)) -> None:
    """Import every module of a plug-in package (except ``skip``), so that each registers itself."""
    for module in pkgutil.iter_modules(package_path):
        if module.name not in skip and not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")


def summary(obj) -> str:
    """The first paragraph of ``obj``'s docstring on one line (a plug-in's summary may wrap), or ''."""
    paragraph = (inspect.getdoc(obj) or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def keyword_parameters(fn: Callable) -> str:
    """``key=default, ...`` for the keyword-only parameters of ``fn`` (its user-facing options)."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY]
    return ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params)

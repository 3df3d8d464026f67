"""A name -> object registry with the project's error messages; inits and tasks each keep one."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one ``kind`` (e.g. "init") found by name; a wrong name lists the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator adding the decorated object under ``name``."""

        def decorate(item: T) -> T:
            if name in self._items and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
            self._items[name] = item
            return item

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent): for tests and interactive sessions."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}") from None

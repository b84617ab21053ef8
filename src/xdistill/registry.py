"""One registry pattern for every named component (students, teacher kinds,
losses, metrics, methods).

    STUDENTS = Registry("student")

    @STUDENTS.register("cnn")
    def cnn(...): ...

    STUDENTS.get("cnm")  # XDistillError: Unknown student 'cnm'. Did you mean 'cnn'? ...
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from xdistill.errors import XDistillError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with decorator registration and helpful misses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as ``@REG.register("name")``."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        if obj is not None:
            return add(obj)
        return add

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        raise XDistillError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        names = sorted(self._items)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        if not close:
            lowered = {n.lower().replace("_", "-"): n for n in names}
            key = str(name).lower().replace("_", "-")
            close = [lowered[key]] if key in lowered else []
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown {self.kind} '{name}'.{hint} Available: {', '.join(names)}."

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of a package (``import_submodules(__name__, __path__)`` in its
    ``__init__``), so that a component registered in a module of its own needs no import list."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")

"""Name -> class registries that fail loudly on unknown or duplicate names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from privaudit.core.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by {self._entries[name].__name__}"
                )
            self._entries[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
        if name not in self._entries:
            raise InputError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

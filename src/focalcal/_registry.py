"""The one registry pattern of focalcal (losses, models, datasets, calibrators, suites).

Example:
    >>> from focalcal._registry import Registry
    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def make_red(shade: int = 1) -> str:
    ...     return f"red{shade}"
    >>> colours.get("red", shade=2)
    'red2'
    >>> _ = colours.register("green", "vert")(lambda: "green")
    >>> colours.canonical("Vert")
    'green'
    >>> colours.get("blue")
    Traceback (most recent call last):
    ...
    ValueError: unknown colour 'blue'; expected one of: green, red, vert
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Maps names to factories; ``get(name, **kwargs)`` builds the object.

    Names are case-insensitive; ``-`` and ``_`` are interchangeable.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._canonical: dict[str, str] = {}

    @staticmethod
    def _key(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def register(self, name: str, *aliases: str) -> Callable[[F], F]:
        """Decorator registering a factory under ``name`` (and ``aliases``)."""

        def decorator(factory: F) -> F:
            for n in (name, *aliases):
                key = self._key(n)
                if key in self._factories:
                    raise ValueError(f"{self.kind} {n!r} is already registered")
                self._factories[key] = factory
                self._canonical[key] = self._key(name)
            return factory

        return decorator

    def canonical(self, name: str) -> str:
        """The name ``name`` was registered under, for any of its aliases and spellings.

        Every lookup keyed by a registered name (default hyper-parameter tables, labels) goes
        through this, so an alias can never miss an entry that its canonical name has.
        """
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name: expected a string, got {type(name).__name__}")
        try:
            return self._canonical[self._key(name)]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; unknown names list the valid ones."""
        return self._factories[self.canonical(name)]

    def get(self, name: str, /, **kwargs: Any) -> T:
        """Build the object registered under ``name`` with ``kwargs``."""
        return self.factory(name)(**kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

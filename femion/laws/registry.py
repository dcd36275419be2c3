"""Laws chosen by name: each registry entry is the law's function with the parameters it takes.

A :class:`Law` is called like its function (``LAWS["mhc"](eta, xp=xp, reorganization=16.0)``),
and says which keyword parameters it needs (``Law.parameters``), so a caller (the device, the
case schema) can check names and supply values without copying the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Law:
    """A named law: ``function(x, *, xp, **params)`` and the names of its parameters (SI)."""

    name: str
    function: Callable
    parameters: tuple[str, ...] = ()

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


def registry(*laws: Law) -> dict[str, Law]:
    """{name: law} of ``laws``, in the order given."""
    return {law.name: law for law in laws}


def choose(registry: dict, name: str, what: str):
    """``registry[name]``, or ValueError naming ``what`` and the allowed names (laws chosen by name)."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(sorted(registry))}") from None

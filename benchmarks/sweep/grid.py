"""The grid of a sweep: ``--grid KEY=V1,V2,...`` axes and their cartesian product.

Each axis is one pipeline setting (a dotted key, as ``--set`` takes it) and the
values to try. A configuration picks one value per axis; the configurations are
every combination, in axis order. Values are kept as written and parsed as TOML
by the pipeline loader, so ``--grid llm.stop=["a","b"],[]`` has two values: commas
inside brackets, braces or quotes do not separate values.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Axis", "Configuration", "GridError", "configurations", "parse_axis", "parse_grid"]

_OPEN = {"[": "]", "{": "}"}


class GridError(ValueError):
    """A ``--grid`` argument is malformed; the message names it and what is wrong."""


@dataclass(frozen=True)
class Axis:
    """One setting and the values a sweep tries for it."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Configuration:
    """One value per axis: the overrides a cell applies on top of its pipeline file."""

    settings: tuple[tuple[str, str], ...] = ()

    @property
    def overrides(self) -> list[str]:
        """The settings as ``--set`` arguments (``key=value``), in axis order."""
        return [f"{key}={value}" for key, value in self.settings]

    @property
    def label(self) -> str:
        """A short readable name: the overrides separated by spaces."""
        return " ".join(self.overrides) or "as configured"


def split_values(text: str) -> list[str]:
    """Split at commas that are outside brackets, braces and quotes; strip each value."""
    values: list[str] = []
    closers: list[str] = []
    quote = ""
    current: list[str] = []
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in _OPEN:
            closers.append(_OPEN[char])
        elif closers and char == closers[-1]:
            closers.pop()
        elif char == "," and not closers:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quote or closers:
        raise GridError(f"unbalanced {'quote' if quote else 'bracket'} in {text!r}")
    values.append("".join(current).strip())
    return values


def parse_axis(text: str) -> Axis:
    """One ``KEY=V1,V2,...`` argument as an axis; GridError names what is wrong."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    where = f"--grid {text!r}"
    if not sep or not key:
        raise GridError(f"{where}: expected KEY=VALUE1,VALUE2,... (e.g. vad.stop_ms=200,300)")
    parts = key.split(".")
    if len(parts) < 2 or any(not p.strip() or p != p.strip() for p in parts):
        raise GridError(f"{where}: the key must be a dotted setting such as stt.backend")
    try:
        values = split_values(raw)
    except GridError as exc:
        raise GridError(f"{where}: {exc}") from None
    if any(not v for v in values):
        raise GridError(f"{where}: empty value (values are separated by commas)")
    duplicate = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if duplicate is not None:
        raise GridError(f"{where}: value {duplicate!r} is listed twice")
    return Axis(key=key, values=tuple(values))


def parse_grid(items: Sequence[str]) -> list[Axis]:
    """Every ``--grid`` argument as an axis; a key may appear in only one of them."""
    axes = [parse_axis(item) for item in items]
    seen: set[str] = set()
    for axis in axes:
        if axis.key in seen:
            raise GridError(f"--grid {axis.key}: given twice; list all its values in one --grid")
        seen.add(axis.key)
    return axes


def configurations(axes: Sequence[Axis]) -> list[Configuration]:
    """The cartesian product of the axes (one empty configuration when there are none)."""
    keys = [axis.key for axis in axes]
    return [
        Configuration(tuple(zip(keys, combo, strict=True)))
        for combo in itertools.product(*(axis.values for axis in axes))
    ]

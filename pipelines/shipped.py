"""The pipeline files that ship with Parley, and how a name finds one."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED", "resolve_pipeline", "shipped_names"]

SHIPPED = Path(__file__).resolve().parent
"""The folder of the shipped pipeline files (``cascade-local.toml``...)."""


def shipped_names() -> list[str]:
    """The names of the shipped pipelines, sorted."""
    return sorted(p.stem for p in SHIPPED.glob("*.toml"))


def resolve_pipeline(name_or_path: str | Path) -> Path:
    """A pipeline file path, or the name of a shipped one (``cascade-local``).

    A name that is neither an existing path nor a shipped pipeline is a
    :class:`~pipelines.config.ConfigError` listing the shipped names.
    """
    from pipelines.config import ConfigError

    text = str(name_or_path)
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or "/" in text:
        return path
    shipped = SHIPPED / f"{text}.toml"
    if shipped.exists():
        return shipped
    raise ConfigError(f"no pipeline file {text!r}; shipped pipelines: {', '.join(shipped_names())}")

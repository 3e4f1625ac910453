"""Control frames for synthesis boundaries and runtime settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framework.frames.base import ControlFrame

__all__ = ["SettingsUpdateFrame", "TTSStartedFrame", "TTSStoppedFrame"]


@dataclass(slots=True, kw_only=True)
class TTSStartedFrame(ControlFrame):
    """Speech synthesis began for a reply."""


@dataclass(slots=True, kw_only=True)
class TTSStoppedFrame(ControlFrame):
    """Speech synthesis finished for a reply."""


@dataclass(slots=True, kw_only=True)
class SettingsUpdateFrame(ControlFrame):
    """Change processor settings at run time; ``target`` names a processor, or empty for all."""

    settings: dict[str, Any] = field(default_factory=dict)
    target: str = ""

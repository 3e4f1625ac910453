"""Capabilities: what a processor can do, declared as data instead of guessed from its type."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Flags a processor declares in its ``capabilities`` class attribute.

    Pipelines, the benchmark and the server read these instead of testing types:
    for example a realtime processor with ``server_vad`` can own turn-taking, and
    one with ``truncation`` can cut its conversation at the audio actually played.
    """

    streaming: bool = False
    """Produces output incrementally (tokens, audio chunks, partial transcripts)."""
    interim_results: bool = False
    """Emits interim transcriptions before the final one."""
    server_vad: bool = False
    """Detects speech itself and emits the user speaking frames."""
    truncation: bool = False
    """Can cut its conversation history at the point playback was interrupted."""
    tools: bool = False
    """Runs function calls declared in the pipeline."""
    speech_to_speech: bool = False
    """Hears audio and answers with audio in one stage."""

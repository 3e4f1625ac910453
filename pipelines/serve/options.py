"""Settings of ``parley serve``: limits and defaults."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework.runtime import YOUNG_THRESHOLD

__all__ = ["ServerOptions", "parse_options"]

MIB = 1024 * 1024
DEFAULT_MAX_SESSIONS = 8
"""Sessions share the process's models, so memory is not what limits them: 20 sessions
of the offline cascade peak at ~680 MiB against ~560 MiB for the models alone (see
benchmarks/RESULTS.md, "parley serve: memory over repeated sessions"). CPU is: on
two cores the language model answers one session at a time and the cascade runs
about 23 CPU-seconds per conversation minute (RESULTS.md, voice-to-voice), so the
default stays well under what 20 concurrent speakers would queue up. Raise it with
``--max-sessions`` on a bigger machine."""


class ServerOptions(BaseModel):
    """Server-wide settings; every session of the server shares them.

    Misbehaving on purpose (dropping the connection mid-response, trickling the
    deltas) is no option: tests wrap the connection instead (``wrap_connection``
    of :func:`~pipelines.serve.app.serve`).
    """

    model_config = ConfigDict(extra="forbid")

    max_sessions: int = Field(
        default=DEFAULT_MAX_SESSIONS,
        ge=1,
        le=10_000,
        description="Connections served at once; one more is refused with HTTP 503 before "
        "the WebSocket upgrade.",
    )
    drain_timeout_s: float = Field(
        default=20.0,
        ge=0.0,
        le=86_400.0,
        description="On SIGTERM, how long running sessions get to end before they are "
        "closed (error server_shutting_down, close 1012); new sessions are refused at once.",
    )
    gc_threshold: int = Field(
        default=YOUNG_THRESHOLD,
        ge=0,
        description="Young-generation threshold of Python's garbage collector, set when "
        "the server starts (framework.runtime.tune_gc: many sessions otherwise set off "
        "full collections that stall every session's audio); 0 keeps Python's 700.",
    )
    max_message_bytes: int = Field(
        default=16 * MIB,
        ge=1024,
        description="Largest client message accepted; a larger one gets an error event "
        "(the connection stays open).",
    )
    hard_max_message_bytes: int = Field(
        default=64 * MIB,
        ge=1024,
        description="A message above this size closes the connection (1009) before it is read.",
    )
    max_append_bytes: int = Field(
        default=15 * MIB,
        ge=1,
        description="Largest decoded audio in one input_audio_buffer.append (OpenAI: 15 MiB).",
    )
    instructions: str | None = Field(
        default=None,
        description="Default session instructions; None: the pipeline's llm system_prompt "
        "if set, else a short voice-assistant prompt.",
    )
    delta_ms: int = Field(
        default=100, ge=10, le=2000, description="Longest audio delta, in milliseconds."
    )
    transcript_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="A response waits this long at most for a user turn's transcript.",
    )
    speculate: bool = Field(
        default=True,
        description="Prepare the reply at a pause inside a server_vad or semantic_vad turn "
        "and hold it until the turn ends (withdrawn if the user goes on); False starts it "
        "at the end of the turn.",
    )
    backchannel_ms: float = Field(
        default=600.0,
        ge=0,
        description="Speech that starts while the client still plays a reply is held this "
        "long (at most the pipeline file's [interruption] max_pause_ms, under its 'words' "
        "rule) before it interrupts: a backchannel ('uh-huh') or a cough that ends sooner "
        "is judged on its words, and the reply plays on through it. 0: every speech start "
        "interrupts at once.",
    )
    eager_start: bool = Field(
        default=True,
        description="Load the models before listening and start each session's pipeline "
        "on connect; False waits for the first event that needs it (audio, a response).",
    )
    start_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a session waits for its models to load."
    )
    max_duration_s: float = Field(
        default=3600.0,
        gt=0,
        description="Session length limit: then error session_expired and close 1001 "
        "(OpenAI: 60 minutes).",
    )


def parse_options(items: Sequence[str]) -> ServerOptions:
    """Options from ``KEY=VALUE`` strings (``max_duration_s=60``); values are read as JSON
    when they parse (numbers, booleans, null), else as text. Errors name the option."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"server option {item!r} must look like name=value")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    try:
        return ServerOptions.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        allowed = ", ".join(ServerOptions.model_fields)
        if err["type"] == "extra_forbidden":
            raise ValueError(f"unknown server option {name!r} (options: {allowed})") from None
        raise ValueError(f"server option {name!r}: {err['msg']} (options: {allowed})") from None

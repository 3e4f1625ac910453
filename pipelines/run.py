"""``parley run``: play a WAV into a pipeline file's conversation and record what happened."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import anyio

from framework import EndReason, PipelineRunner
from pipelines.config import PipelineConfig, load_pipeline_file
from pipelines.factory import Session, build_session
from pipelines.launch import prepared

__all__ = ["build_file_session", "run_file"]

log = logging.getLogger("parley")


def build_file_session(
    config: PipelineConfig,
    *,
    input_path: Path,
    output_path: Path,
    events_path: Path | None = None,
    stereo: bool = False,
) -> tuple[Session, object]:
    """Build the conversation of ``config`` around a file transport and an event log."""
    from processors.recording.events import EventLog
    from processors.transports.file import FileTransport, FileTransportParams

    transport_params = dict(config.stage("transport").params)
    transport_params.update(input_path=str(input_path), output_path=str(output_path), stereo=stereo)
    transport = FileTransport(FileTransportParams.model_validate(transport_params))
    events = EventLog(path=events_path) if events_path else EventLog()
    session = build_session(config, transport, observers=[events])
    return session, events


def run_file(
    pipeline_path: Path,
    *,
    input_path: Path,
    output_path: Path,
    events_path: Path | None = None,
    overrides: Iterable[str] = (),
    stereo: bool = False,
) -> int:
    """Run the conversation to the end of the input; returns a process exit code."""
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: no such input WAV file")
    config = load_pipeline_file(pipeline_path, overrides)

    async def conversation() -> tuple[Session, EndReason]:
        async with prepared(config) as ready:
            session, _events = build_file_session(
                ready,
                input_path=input_path,
                output_path=output_path,
                events_path=events_path,
                stereo=stereo,
            )
            return session, await PipelineRunner().run(session.task)

    session, reason = anyio.run(conversation)
    for error in session.task.errors:
        print(f"error from {error.processor}: {error.message}")
    print(f"{session.config.pipeline.name}: {reason.value}; wrote {output_path}")
    if events_path:
        print(f"events: {events_path}")
    return 0 if reason is EndReason.ENDED else 1

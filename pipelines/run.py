"""``parley run``: play a WAV into a pipeline file's conversation and record what happened.

Every path is checked before anything starts: the input must be readable audio,
and the output, events and stereo recording must be writable where they are
named, so a mistake ends at once with :class:`RunError` instead of after the whole
input has played. SIGINT and SIGTERM stop the conversation; the output then holds
it up to the stop, and the exit code is ``128 + signal`` (130, 143).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from framework import EndReason, PipelineRunner
from framework.observer import FrameEndpoint, Observer
from pipelines.config import PipelineConfig, load_pipeline_file
from pipelines.factory import Session, build_session
from pipelines.launch import prepared
from pipelines.stopping import stop_on_signals, stopped_in

if TYPE_CHECKING:
    from framework.audio import WavAudio
    from processors.recording.events import EventLog
    from processors.transports.file import FileTransport

__all__ = ["RunError", "build_file_session", "check_input", "check_writable", "run_file"]

log = logging.getLogger("parley")


class RunError(ValueError):
    """A mistake in what ``parley run`` was given; the message names it in one line."""


def check_input(path: Path) -> WavAudio:
    """Read the input WAV, or raise :class:`RunError` saying why it cannot be used."""
    from framework.audio import read_wav

    if not path.exists():
        raise RunError(f"--input {path}: no such file")
    if path.is_dir():
        raise RunError(f"--input {path}: is a folder; give a WAV file")
    if path.stat().st_size == 0:
        raise RunError(f"--input {path}: the file is empty; give a WAV file")
    try:
        audio = read_wav(path)
    except ValueError as exc:  # the message names the file and the reason
        raise RunError(f"--input {_one_line(exc)}") from None
    except OSError as exc:
        raise RunError(f"--input {path}: cannot be read: {exc.strerror or exc}") from None
    if audio.num_samples == 0:
        raise RunError(f"--input {path}: holds no audio (0 samples)")
    return audio


def check_writable(path: Path, option: str) -> None:
    """Raise :class:`RunError` unless a file can be written at ``path``.

    The check opens the file for writing (an existing file is neither truncated
    nor changed; a new one is removed again), so what the system refuses is found
    now rather than when the conversation ends.
    """
    if path.is_dir():
        raise RunError(f"{option} {path}: is a folder; name a file in it")
    folder = path.absolute().parent
    if not folder.exists():
        raise RunError(f"{option} {path}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise RunError(f"{option} {path}: {folder} is not a folder")
    if path.exists() and not path.is_file():
        raise RunError(f"{option} {path}: not a regular file; name a file to write")
    exists = path.exists()
    try:
        if exists:
            os.close(os.open(path, os.O_WRONLY))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            path.unlink()
    except OSError as exc:
        where = "write the file" if exists else f"create a file in {folder}"
        raise RunError(f"{option} {path}: cannot {where}: {exc.strerror}") from None


def _check_distinct(paths: Mapping[str, Path | None]) -> None:
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = path.resolve()
        if key in seen:
            raise RunError(f"{option} {path}: the same file as {seen[key]}; give another name")
        seen[key] = option


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def build_file_session(
    config: PipelineConfig,
    *,
    input_path: Path,
    output_path: Path,
    events_path: Path | None = None,
    stereo: bool = False,
    audio: WavAudio | None = None,
    observers: Sequence[Observer] = (),
) -> tuple[Session[FileTransport], EventLog]:
    """Build the conversation of ``config`` around a file transport and an event log.

    ``audio`` is the input already read from ``input_path``, if it has been;
    ``observers`` watch the task besides the event log.
    """
    from processors.recording.events import EventLog
    from processors.transports.file import FileTransport, FileTransportParams

    transport_params = dict(config.stage("transport").params)
    transport_params.update(input_path=str(input_path), output_path=str(output_path), stereo=stereo)
    params = FileTransportParams.model_validate(transport_params)
    transport = FileTransport(params, audio=audio)
    events = EventLog(path=events_path) if events_path else EventLog()
    session = build_session(config, transport, observers=[events, *observers])
    return session, events


class _Announce(Observer):
    """Says on stdout when the input starts playing (a run takes as long as its input)."""

    def __init__(self, name: str, input_path: Path) -> None:
        self.name = name
        self.input_path = input_path

    def on_event(
        self, source: FrameEndpoint, event: str, timestamp_ns: int, fields: Mapping[str, Any]
    ) -> None:
        if event == "input_started":
            seconds = float(fields.get("duration_s", 0.0))
            print(f"{self.name}: playing {self.input_path} ({seconds:.2f} s)", flush=True)


def run_file(
    pipeline_path: Path,
    *,
    input_path: Path,
    output_path: Path,
    events_path: Path | None = None,
    overrides: Iterable[str] = (),
    stereo: bool = False,
) -> int:
    """Run the conversation to the end of the input; returns a process exit code.

    Raises :class:`RunError` (and the config's own errors) before anything runs
    when the pipeline or a path cannot be used.
    """
    config = load_pipeline_file(pipeline_path, overrides)
    audio = check_input(input_path)
    _check_distinct({"--input": input_path, "--output": output_path, "--events": events_path})
    check_writable(output_path, "--output")
    if events_path is not None:
        check_writable(events_path, "--events")
    runner = PipelineRunner()

    async def conversation() -> tuple[Session[FileTransport], EndReason]:
        async with prepared(config) as ready:
            session, events = build_file_session(
                ready,
                input_path=input_path,
                output_path=output_path,
                events_path=events_path,
                stereo=stereo,
                audio=audio,
                observers=[_Announce(ready.pipeline.name, input_path)],
            )
            with events:
                return session, await runner.run(session.task)

    # Until the runner watches the signals (and after it), a signal stops the run
    # where it is; the runner turns one into a cancelled conversation.
    with stop_on_signals():
        try:
            session, reason = anyio.run(conversation)
        except BaseException as exc:
            stopped = stopped_in(exc)
            if stopped is None:
                raise
            name = stopped.signal.name
            print(f"parley run: {name} before the input started; nothing written", file=sys.stderr)
            return stopped.exit_code
    return _report(session, reason, runner.signal, output_path, events_path)


def _report(
    session: Session[FileTransport],
    reason: EndReason,
    stopped_by: signal.Signals | None,
    output_path: Path,
    events_path: Path | None,
) -> int:
    """Print how the run ended and what it wrote; return the exit code."""
    transport = session.transport
    for error in session.task.errors:
        print(f"error from {error.processor}: {error.message}")
    heard, length = transport.heard_s, transport.input_s
    how = f"stopped by {stopped_by.name}" if stopped_by is not None else reason.value
    if reason is not EndReason.ENDED or stopped_by is not None:
        if heard < length:
            how += f" at {heard:.2f} s of the {length:.2f} s input"
        else:
            how += f" after the {length:.2f} s input"
    if transport.written is not None:
        what = f"wrote {output_path}"
    else:
        what = f"{output_path} was not written"
    print(f"{session.config.pipeline.name}: {how}; {what}")
    if events_path:
        print(f"events: {events_path}")
    if stopped_by is not None:
        return 128 + int(stopped_by)
    return 0 if reason is EndReason.ENDED and transport.written is not None else 1

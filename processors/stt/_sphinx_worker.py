"""A PocketSphinx decoder in a child process, and the client that drives it.

PocketSphinx's Python binding keeps the GIL while it decodes: ending an
utterance (100-300 ms with the default passes) would freeze the event loop even
from a worker thread. The decoder therefore lives in a child process, started
with ``python <this file>``, so it needs nothing but the standard library and
pocketsphinx. The two sides talk over the child's stdin and stdout:

* request: 1 command byte and a 4-byte big-endian length, then the payload.
  ``S`` starts an utterance, ``F`` feeds PCM16 audio, ``P`` feeds audio and asks
  for the partial hypothesis, ``E`` ends the utterance and asks for the final
  one, ``C`` asks for the cepstral mean the decoder has adapted to (the text of
  ``cmninit``), ``Q`` quits. A command that has no payload sends length 0.
* reply: 1 status byte (``o`` ok, ``e`` error), a 4-byte length, an 8-byte float
  (the child's CPU seconds so far), then the UTF-8 text (a hypothesis or an
  error message).

The child sends one reply when its decoder is ready (or failed to load) and one
per command. It exits on ``Q`` or when its stdin closes, so it never outlives
its parent's pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

__all__ = ["SphinxProcess"]

_REQUEST = struct.Struct(">cI")
_REPLY = struct.Struct(">cId")


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the other side closed the pipe")
        data += more
    return data


class SphinxProcess:
    """Client side: one decoder in one child process; calls block, one at a time."""

    def __init__(
        self, options: dict[str, Any], start_timeout_s: float = 30.0, call_timeout_s: float = 30.0
    ) -> None:
        """Start the child and wait until its decoder has loaded; raises if it cannot.

        A child that takes longer than ``start_timeout_s`` to load, or
        ``call_timeout_s`` to answer a call (stopped, deadlocked), is killed, and
        the call waiting for it raises.
        """
        self.cpu_s = 0.0
        self.cmn: str | None = None
        """The cepstral mean after the latest utterance: ``cmninit`` for a successor."""
        self.call_timeout_s = call_timeout_s
        self._lock = threading.Lock()
        self._timeout_s = start_timeout_s
        self._deadline: float | None = time.monotonic() + start_timeout_s
        self._killed_after: float | None = None  # the timeout that killed the child
        self._closed = threading.Event()
        self._proc = subprocess.Popen(
            # -P: the script's folder (processors/stt, with our own pocketsphinx.py)
            # must not shadow the pocketsphinx package.
            [sys.executable, "-P", "-u", os.path.abspath(__file__), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # the child's stderr is the parent's: its messages stay visible
        self._watchdog = threading.Thread(
            target=self._watch, name=f"sphinx-watchdog-{self._proc.pid}", daemon=True
        )
        self._watchdog.start()
        try:
            self._reply()
        except Exception:
            self.close()
            raise
        finally:
            self._deadline = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the child still runs and the client is open."""
        return not self._closed.is_set() and self._proc.poll() is None

    def start(self) -> None:
        """Begin an utterance (ending one left open by a failure first)."""
        self._call(b"S")

    def feed(self, pcm: bytes, want_hyp: bool) -> str | None:
        """Decode mono PCM16 audio at 16 kHz; the partial hypothesis if ``want_hyp``."""
        text = self._call(b"P" if want_hyp else b"F", pcm)
        return text if want_hyp else None

    def finish(self) -> str:
        """End the utterance and return its final hypothesis.

        Also reads the cepstral mean the decoder has adapted to, kept in :attr:`cmn`.
        """
        text = self._call(b"E")
        self.cmn = self._call(b"C")
        return text

    def close(self) -> None:
        """Ask the child to quit; kill it if it has not within 2 s. Stops the watchdog."""
        self._closed.set()
        self._watchdog.join()
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(_REQUEST.pack(b"Q", 0))
                proc.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                # Unsent requests to a dead child have nowhere to go: closing may say so.
                with contextlib.suppress(OSError):
                    stream.close()

    def _call(self, command: bytes, payload: bytes = b"") -> str:
        with self._lock:
            stdin = self._proc.stdin
            assert stdin is not None
            self._timeout_s = self.call_timeout_s
            self._deadline = time.monotonic() + self.call_timeout_s
            try:
                try:
                    stdin.write(_REQUEST.pack(command, len(payload)) + payload)
                    stdin.flush()
                except (OSError, ValueError) as exc:
                    raise self._gone(exc) from exc
                return self._reply()
            finally:
                self._deadline = None

    def _watch(self) -> None:
        """Watchdog thread: kill the child when a call (or the start) takes too long."""
        while not self._closed.wait(0.25):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline and self._proc.poll() is None:
                self._killed_after = self._timeout_s
                self._proc.kill()

    def _gone(self, exc: Exception) -> RuntimeError:
        """The error for a child that can no longer be talked to, with its exit code."""
        try:
            code = self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:  # alive but its pipe broke: it cannot be used
            return RuntimeError(f"the PocketSphinx process stopped answering ({exc})")
        if self._killed_after is not None:
            return RuntimeError(
                f"the PocketSphinx process did not answer within {self._killed_after:g} s "
                "and was killed"
            )
        return RuntimeError(
            f"the PocketSphinx process exited with code {code} (its messages are on stderr)"
        )

    def _reply(self) -> str:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            status, size, cpu_s = _REPLY.unpack(_read_exact(stdout, _REPLY.size))
        except EOFError as exc:
            raise self._gone(exc) from None
        text = _read_exact(stdout, size).decode("utf-8", errors="replace")
        self.cpu_s = cpu_s
        if status != b"o":
            raise RuntimeError(text)
        return text


def _serve(options: dict[str, Any]) -> None:
    """Child side: run the decoder until told to quit or the pipe closes."""
    # Keep fd 1 for replies; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer

    def reply(status: bytes, text: str) -> None:
        data = text.encode("utf-8")
        out.write(_REPLY.pack(status, len(data), time.process_time()) + data)
        out.flush()

    try:
        from pocketsphinx import Decoder

        decoder = Decoder(**options)
    except Exception as exc:
        reply(b"e", f"{type(exc).__name__}: {exc}")
        return
    reply(b"o", "")
    while True:
        try:
            command, size = _REQUEST.unpack(_read_exact(source, _REQUEST.size))
            payload = _read_exact(source, size)
        except EOFError:
            return
        if command == b"Q":
            return
        try:
            text = ""
            if command == b"S":
                try:
                    decoder.start_utt()
                except RuntimeError:  # an utterance left open by a failed turn
                    decoder.end_utt()
                    decoder.start_utt()
            elif command in (b"F", b"P"):
                decoder.process_raw(payload, False, False)
                if command == b"P":
                    hyp = decoder.hyp()
                    text = hyp.hypstr if hyp is not None else ""
            elif command == b"E":
                decoder.end_utt()
                hyp = decoder.hyp()
                text = hyp.hypstr if hyp is not None else ""
            elif command == b"C":
                text = decoder.get_cmn(False)
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as exc:
            reply(b"e", f"{type(exc).__name__}: {exc}")
        else:
            reply(b"o", text)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))

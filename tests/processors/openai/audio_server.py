"""OpenAI's audio endpoints on 127.0.0.1, backed by the offline models, for tests.

``POST /v1/audio/transcriptions`` (multipart, a WAV file) answers with Whisper
tiny.en's text and a duration usage block; ``POST /v1/audio/speech``
(``response_format: pcm``) streams Piper's speech as 24 kHz PCM16 in chunks.
It stands where OpenAI's servers would, at the network boundary, and records
each request (path, headers, fields) for the tests. Model ``fail`` gets an
OpenAI-shaped 400 error. :meth:`AudioServer.fail_next` breaks the next requests
of an endpoint: ``"500"`` answers with an OpenAI-shaped server error, ``"drop"``
closes the connection (transcriptions: before any answer; speech: after the
first 100 ms of audio, mid-stream).
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from framework.audio import resample


class AudioServer:
    """Start with :meth:`start`; ``url`` is the base URL; :meth:`stop` shuts it down."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[str, list[str]] = {"transcriptions": [], "speech": []}
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._whisper: Any = None
        self._piper: Any = None

    def start(self) -> None:
        from processors.stt._whisper_engine import default_model_dir, load_model
        from processors.tts.piper import PiperTTS

        self._whisper = load_model(default_model_dir(), "int8", 2)
        self._piper = PiperTTS()
        self._piper.load()
        server = self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, endpoint: str, fault: str, times: int = 1) -> None:
        """Break the next ``times`` requests to ``endpoint`` (transcriptions, speech)."""
        if fault not in ("500", "drop"):
            raise ValueError(f"unknown fault {fault!r}: 500 or drop")
        self.faults[endpoint] += [fault] * times

    def take_fault(self, endpoint: str) -> str | None:
        faults = self.faults[endpoint]
        return faults.pop(0) if faults else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def transcribe(self, wav: bytes) -> tuple[str, float]:
        from processors.stt._whisper_engine import PassOptions

        with wave.open(io.BytesIO(wav)) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = w.readframes(w.getnframes())
        if channels != 1:
            raise ValueError("mono only")
        pcm = resample(pcm, rate, 16000)
        text = self._whisper.transcribe(pcm, PassOptions()) or ""
        return text.strip(), len(pcm) / 32000

    def speak(self, text: str) -> bytes:
        pcm = self._piper.synthesize(text)
        return resample(pcm, self._piper.voice_sample_rate, 24000)


class _Server(ThreadingHTTPServer):
    """Quiet when a client resets its connection (a test closing its client at any time)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(owner: AudioServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(
            self, status: int, message: str, code: str, kind: str = "invalid_request_error"
        ) -> None:
            self._json(
                status,
                {"error": {"message": message, "type": kind, "param": None, "code": code}},
            )

        def _drop(self) -> None:
            """Cut the connection at once, whatever the client is waiting for."""
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def _fault(self, endpoint: str) -> str | None:
            """Answer a planned 500 here; return the fault left to the endpoint."""
            fault = owner.take_fault(endpoint)
            if fault == "500":
                self._error(
                    500, "The server had an error (injected).", "server_error", "server_error"
                )
                return "500"
            return fault

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record: dict[str, Any] = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            owner.requests.append(record)
            if self.path.endswith("/audio/transcriptions"):
                self._transcriptions(body, record)
            elif self.path.endswith("/audio/speech"):
                self._speech(body, record)
            else:
                self._error(404, f"no endpoint {self.path}", "not_found")

        def _transcriptions(self, body: bytes, record: dict[str, Any]) -> None:
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            message = BytesParser(policy=HTTP).parsebytes(head + body)
            fields: dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                fields[str(name)] = payload if name == "file" else payload.decode()
            record["fields"] = {k: v for k, v in fields.items() if k != "file"}
            record["file_bytes"] = len(fields.get("file", b""))
            fault = self._fault("transcriptions")
            if fault == "drop":
                self._drop()
            if fault is not None:
                return
            if fields.get("model") == "fail":
                self._error(400, "The model 'fail' does not exist.", "model_not_found")
                return
            text, seconds = owner.transcribe(fields["file"])
            self._json(200, {"text": text, "usage": {"type": "duration", "seconds": seconds}})

        def _speech(self, body: bytes, record: dict[str, Any]) -> None:
            request = json.loads(body)
            record["fields"] = request
            if request.get("model") == "fail" or request.get("response_format") != "pcm":
                self._error(400, "unsupported request", "invalid_value")
                return
            fault = self._fault("speech")
            if fault == "500":
                return
            pcm = owner.speak(request["input"])
            self.send_response(200)
            self.send_header("Content-Type", "audio/pcm")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(pcm), 4800):  # 100 ms pieces, as a stream
                chunk = pcm[start : start + 4800]
                self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if fault == "drop":
                    self._drop()
                    return
            self.wfile.write(b"0\r\n\r\n")

    return Handler

"""A TCP proxy on 127.0.0.1 in front of a real HTTP server, able to break its answers.

It stands where the network would fail: between the OpenAI client and
llama.cpp's own OpenAI-compatible server. Each client connection carries one
request (the proxy asks the server to close after it, and the server's answer
says so to the client). A planned fault applies to the next request:

* ``"500"``: the proxy answers an OpenAI-shaped 500 itself; the server never sees it;
* ``"cut"``: the request goes to the server, and the connection is closed after the
  first ``cut_after_events`` server-sent events of its streamed answer.

It runs in the caller's event loop (:meth:`FaultProxy.serve` in a task group),
so it leaves no thread behind.
"""

from __future__ import annotations

import json
from collections import deque
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["FaultProxy"]

_HEAD_END = b"\r\n\r\n"


class FaultProxy:
    """Proxy to ``upstream_url``'s host; ``url`` is the same base URL through the proxy."""

    def __init__(self, upstream_url: str, cut_after_events: int = 3) -> None:
        parts = urlsplit(upstream_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = parts.path
        self.cut_after_events = cut_after_events
        self.faults: deque[str] = deque()
        self.requests = 0
        self.url = ""

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Break the next ``times`` requests with ``fault`` (``500`` or ``cut``)."""
        if fault not in ("500", "cut"):
            raise ValueError(f"unknown fault {fault!r}: 500 or cut")
        self.faults.extend([fault] * times)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Listen on a free port until cancelled; ``url`` is set once listening."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://127.0.0.1:{port}{self._path}"
        async with listener:
            task_status.started()
            await listener.serve(self._connection)

    async def _connection(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            try:
                head = await reader.receive_until(_HEAD_END, 65536)
            except (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.EndOfStream):
                return
            lines = head.decode("latin-1").split("\r\n")
            headers = [line for line in lines[1:] if not line.lower().startswith("connection:")]
            length = next(
                (
                    int(h.split(":", 1)[1])
                    for h in headers
                    if h.lower().startswith("content-length:")
                ),
                0,
            )
            body = await reader.receive_exactly(length) if length else b""
            self.requests += 1
            fault = self.faults.popleft() if self.faults else None
            if fault == "500":
                await client.send(_server_error())
                return
            request = "\r\n".join([lines[0], *headers, "Connection: close"]) + "\r\n\r\n"
            async with await anyio.connect_tcp(self._host, self._port) as server:
                await server.send(request.encode("latin-1") + body)
                await self._relay(server, client, cut=fault == "cut")

    async def _relay(
        self, server: anyio.abc.SocketStream, client: anyio.abc.SocketStream, *, cut: bool
    ) -> None:
        events = 0
        while True:
            try:
                data = await server.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            if cut:
                events += data.count(b"data: ")
            await client.send(data)
            if cut and events >= self.cut_after_events:
                return  # both connections close mid-stream


def _server_error() -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": "The server had an error (injected).",
                "type": "server_error",
                "param": None,
                "code": "server_error",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body

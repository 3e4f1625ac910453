"""Signalling for the WebRTC transport: the talk page and the SDP offer/answer endpoint.

:func:`mount` adds to an aiohttp application:

- ``GET /``: the talk page (plain HTML and JavaScript, in ``static/``);
- ``POST /offer``: a JSON body ``{"sdp": ..., "type": "offer"}`` returns the
  answer ``{"sdp": ..., "type": "answer", "session": ID}``. The same body with
  ``"session": ID`` renegotiates that session's connection. A malformed body or
  SDP is an HTTP 400 whose text names the problem.

Each new connection is one session: a transport, made by the factory given to
:func:`mount` (``WebRTCTransport.mount`` gives the class itself), handed to the
server's ``run_session``, which runs the pipeline around it. When the peer goes
(a closed tab, an ICE or DTLS failure, its audio stopping for
``media_timeout_s``) the session is cancelled and its peer connection closed;
when the session ends on its own, the connection is closed too. Stopping the
application ends every session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from processors.transports.webrtc.params import WebRTCTransportParams
from processors.transports.webrtc.peer import PeerLink

__all__ = ["SESSIONS", "SessionRegistry", "TransportFactory", "mount"]

log = logging.getLogger("parley")

RunSession = Callable[[Any], Awaitable[None]]


class TransportFactory(Protocol):
    """Makes a session's transport from its peer link (``WebRTCTransport`` itself)."""

    def __call__(
        self, params: WebRTCTransportParams, peer: PeerLink, *, name: str | None = None
    ) -> Any:
        """The transport for ``peer``, named ``name``."""


_STATIC = {"/": ("index.html", "text/html"), "/talk.js": ("talk.js", "text/javascript")}
_STATIC["/talk.css"] = ("talk.css", "text/css")


class OfferError(ValueError):
    """A request to the offer endpoint that cannot be answered; the text says why."""


@dataclass(eq=False)
class _Session:
    id: str
    link: PeerLink
    task: asyncio.Task[None] | None = None
    ending: bool = False


class SessionRegistry:
    """The live sessions of one application, and how they start and end."""

    def __init__(
        self,
        params: WebRTCTransportParams,
        run_session: RunSession,
        make_transport: TransportFactory,
    ) -> None:
        """Sessions run ``run_session(make_transport(params, link, name=...))``."""
        self.params = params
        self.run_session = run_session
        self.make_transport = make_transport
        self.sessions: dict[str, _Session] = {}
        self.started = 0
        self.ended: deque[tuple[str, str]] = deque(maxlen=100)
        """The latest ended sessions: (id, why it ended)."""

    def __len__(self) -> int:
        return len(self.sessions)

    async def answer(self, body: Any) -> dict[str, str]:
        """Answer an offer: a new session, or a renegotiation of an existing one."""
        offer = _parse_offer(body)
        session_id = body.get("session")
        if session_id is not None:
            session = self.sessions.get(str(session_id))
            if session is None:
                raise LookupError(f"no live session {session_id!r} (it may have ended)")
            sdp = await self._negotiate(session.link.pc, offer)
            return {"sdp": sdp, "type": "answer", "session": session.id}
        if len(self.sessions) >= self.params.max_sessions:
            raise OverflowError(
                f"{self.params.max_sessions} sessions are running, the most this server takes"
            )
        servers = [RTCIceServer(urls=url) for url in self.params.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        link = PeerLink(pc, self.params)
        try:
            sdp = await self._negotiate(pc, offer, outgoing=link)
        except BaseException:
            await link.close()
            raise
        session = _Session(secrets.token_urlsafe(12), link)
        self.sessions[session.id] = session
        self.started += 1
        session.task = asyncio.create_task(self._run(session), name=f"webrtc-{session.id}")
        return {"sdp": sdp, "type": "answer", "session": session.id}

    async def _negotiate(
        self, pc: RTCPeerConnection, offer: RTCSessionDescription, outgoing: PeerLink | None = None
    ) -> str:
        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on bad SDP
            raise OfferError(f"the SDP offer was refused: {type(exc).__name__}: {exc}") from exc
        if outgoing is not None:
            if not outgoing.has_audio:
                raise OfferError("the SDP offer sends no audio: add a microphone track")
            pc.addTrack(outgoing.outgoing)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _run(self, session: _Session) -> None:
        """Run the session's pipeline until it ends or the peer goes; then close up."""
        task = asyncio.current_task()
        assert task is not None

        def lost(reason: str) -> None:
            if not session.ending:
                session.ending = True
                task.cancel(reason)

        session.link.on_lost(lost)
        transport = self.make_transport(self.params, session.link, name=f"webrtc.{session.id[:6]}")
        log.info("webrtc: session %s started", session.id)
        outcome = "the pipeline ended"
        try:
            await self.run_session(transport)
        except asyncio.CancelledError:
            if not session.ending or session.link.lost_reason is None:
                outcome = "the server stopped it"
                raise
            task.uncancel()
        except Exception as exc:
            outcome = f"the pipeline failed: {type(exc).__name__}: {exc}"
            log.exception("webrtc: session %s failed", session.id)
        finally:
            session.ending = True
            reason = session.link.lost_reason or outcome
            with contextlib.suppress(Exception):
                await asyncio.shield(session.link.close())
            self.sessions.pop(session.id, None)
            self.ended.append((session.id, reason))
            log.info("webrtc: session %s ended (%s)", session.id, reason)

    async def close_all(self) -> None:
        """End every session and wait until each has closed."""
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


SESSIONS = web.AppKey("parley.webrtc.sessions", SessionRegistry)
"""The application's :class:`SessionRegistry`."""


def _parse_offer(body: Any) -> RTCSessionDescription:
    if not isinstance(body, dict):
        raise OfferError('the body must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise OfferError(f'"type" must be "offer", got {kind!r}')
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError('"sdp" must be a non-empty string holding the SDP offer')
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:
        raise OfferError(f"malformed SDP offer: {type(exc).__name__}: {exc}") from exc
    if not parsed.media:
        raise OfferError("malformed SDP offer: it has no media section (m= line)")
    if not any(m.kind == "audio" for m in parsed.media):
        raise OfferError("the SDP offer has no audio media section")
    return RTCSessionDescription(sdp=sdp, type="offer")


def _page(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type)

    return handler


def mount(
    app: web.Application,
    params: WebRTCTransportParams,
    run_session: RunSession,
    make_transport: TransportFactory,
) -> None:
    """Add the talk page and ``POST /offer`` to ``app``; sessions run ``run_session``.

    Each session's transport is ``make_transport(params, link, name=...)``.
    """
    registry = SessionRegistry(params, run_session, make_transport)
    app[SESSIONS] = registry

    async def offer(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='the body must be JSON: {"sdp": ..., "type": "offer"}'
            ) from None
        try:
            answer = await registry.answer(body)
        except OfferError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        except LookupError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except OverflowError as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)) from None
        return web.json_response(answer)

    async def shutdown(app: web.Application) -> None:
        await registry.close_all()

    for path, (name, content_type) in _STATIC.items():
        app.router.add_get(path, _page(name, content_type))
    app.router.add_post("/offer", offer)
    app.on_shutdown.append(shutdown)

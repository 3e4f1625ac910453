"""Talk to a pipeline from a browser: the WebRTC transport (aiortc) and its page.

``WebRTCTransport.mount(app, params, run_session)`` adds the talk page and the
SDP offer endpoint to an aiohttp application; every browser connection becomes
one session with its own pipeline. See ``docs/webrtc.md``.
"""

from processors.transports.webrtc.transport import WebRTCTransport, WebRTCTransportParams

__all__ = ["WebRTCTransport", "WebRTCTransportParams"]

"""``python -m benchmarks.webrtc``: CPU of N concurrent WebRTC sessions on an echo pipeline.

python -m benchmarks.webrtc --sessions 10 --seconds 20      # measure, print a summary
python -m benchmarks.webrtc --session idle                   # the floor: no pipeline
python -m benchmarks.webrtc cut --cuts 20                    # from a cut to silence at the peer
python -m benchmarks.webrtc serve --max-sessions 10          # the server it measures
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from pathlib import Path


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads, summed by kind (name without number)."""
    from benchmarks.webrtc.cpu import cpu_seconds

    found: dict[str, float] = {}
    for thread in threading.enumerate():
        kind = thread.name.split("-")[0].split("_")[0]
        try:
            used = cpu_seconds(f"/proc/self/task/{thread.native_id}/stat")
        except OSError:  # it ended meanwhile
            continue
        found[kind] = found.get(kind, 0.0) + used
    return found


async def _serve(
    max_sessions: int, opus_complexity: int, opus_application: str, session: str
) -> None:
    from aiohttp import web

    from benchmarks.webrtc.echo import CUT_TIMES, RUN_SESSIONS
    from processors.transports.webrtc import WebRTCTransport, WebRTCTransportParams
    from processors.transports.webrtc.server import SESSIONS

    app = web.Application()
    params = WebRTCTransportParams(
        max_sessions=max_sessions,
        opus_complexity=opus_complexity,
        opus_application=opus_application,  # type: ignore[arg-type]  # checked by the model
    )
    WebRTCTransport.mount(app, params, RUN_SESSIONS[session])

    async def stats(request: web.Request) -> web.Response:
        registry = app[SESSIONS]
        links = [s.link for s in registry.sessions.values()]
        sent = [link.outgoing.frames_sent for link in links]
        received = [link.frames_received for link in links]
        return web.json_response(
            {
                "packets_sent": sent,
                "frames_received": received,
                "threads": _thread_cpu(),
                "ended": [reason for _, reason in registry.ended],
                "cuts": CUT_TIMES,
            }
        )

    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Measure, or (``serve``) run the echo server being measured."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webrtc", description=__doc__)
    parser.add_argument(
        "command", nargs="?", choices=["measure", "serve", "cut"], default="measure"
    )
    parser.add_argument("--sessions", type=int, default=10, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument("--max-sessions", type=int, default=10, help="(serve) session limit")
    parser.add_argument(
        "--opus-complexity", type=int, default=5, help="the server's Opus encoder complexity"
    )
    parser.add_argument(
        "--opus-application",
        choices=["audio", "voip", "lowdelay"],
        default="audio",
        help="the server's Opus encoder mode",
    )
    parser.add_argument(
        "--profile", type=Path, help="(serve) write a cProfile of the server's event loop here"
    )
    parser.add_argument(
        "--session",
        choices=["echo", "idle", "cut"],
        default="echo",
        help="echo: the echo pipeline; idle: no pipeline (decode and drop, send silence); "
        "cut: a tone interrupted every 2 s (what the cut command measures)",
    )
    parser.add_argument("--cuts", type=int, default=20, help="(cut) interruptions to time")
    parser.add_argument("--json", type=Path, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                _serve(args.max_sessions, args.opus_complexity, args.opus_application, args.session)
            )
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return
    if args.command == "cut":
        from benchmarks.webrtc.cut import measure_cuts

        text = asyncio.run(measure_cuts(args.sessions, args.cuts)).report()
        print(text)
        if args.json:
            args.json.write_text(text.splitlines()[-1] + "\n")
        return
    from benchmarks.webrtc.cpu import measure, report

    server_args = [
        "--opus-complexity",
        str(args.opus_complexity),
        "--opus-application",
        args.opus_application,
        "--session",
        args.session,
    ]
    if args.profile:
        server_args += ["--profile", str(args.profile.resolve())]
    result = asyncio.run(measure(args.sessions, args.seconds, server_args=server_args))
    text = report(result)
    print(text)
    if args.json:
        args.json.write_text(text.splitlines()[-1] + "\n")


if __name__ == "__main__":
    main()

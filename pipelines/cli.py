"""The ``parley`` command line: run pipelines, check pipeline files, list backends, benchmark."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from pipelines.shipped import resolve_pipeline

__all__ = ["main"]


def _cmd_check(args: argparse.Namespace) -> int:
    from pipelines.config import load_pipeline_file

    config = load_pipeline_file(resolve_pipeline(args.pipeline), args.set)
    print(f"{config.source}: {config.pipeline.name} ({config.pipeline.architecture})")
    for stage, stage_config in config.stages.items():
        settings = ", ".join(f"{k}={v!r}" for k, v in stage_config.params.items())
        print(f"  {stage:<10} {stage_config.backend:<14} {settings}")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from pipelines import registry

    for backend in registry.backends(args.stage):
        extra = f"[{backend.extra}]" if backend.extra else ""
        print(f"{backend.stage:<10} {backend.name:<14} {extra:<9} {backend.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pipelines.run import RunError, run_file

    try:
        return run_file(
            resolve_pipeline(args.pipeline),
            input_path=Path(args.input),
            output_path=Path(args.output),
            events_path=Path(args.events) if args.events else None,
            overrides=args.set,
            stereo=args.stereo,
        )
    except RunError as exc:
        print(f"parley run: {exc}", file=sys.stderr)
        return 2


def _cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.serve import serve_main

    return serve_main(
        resolve_pipeline(args.pipeline),
        host=args.host,
        port=args.port,
        token=args.token,
        token_file=args.token_file,
        overrides=args.set,
        option_items=args.option,
        max_sessions=args.max_sessions,
        drain_timeout_s=args.drain_timeout,
    )


def _run_or_talk(args: argparse.Namespace) -> int:
    """``parley run``: the file transport plays --input; a live one (websocket...) is served."""
    from pipelines.config import load_pipeline_file
    from pipelines.talk import is_live, talk_main

    path = resolve_pipeline(args.pipeline)
    if is_live(load_pipeline_file(path, args.set)):
        return talk_main(path, overrides=args.set)
    if not (args.input and args.output):
        raise SystemExit("parley run: the file transport needs --input and --output")
    return _cmd_run(args)


def _cmd_talk(args: argparse.Namespace) -> int:
    from pipelines.talk import talk_main

    return talk_main(
        resolve_pipeline(args.pipeline),
        transport=args.transport,
        host=args.host,
        port=args.port,
        overrides=args.set,
    )


COMMANDS_GROUP = "parley.commands"
"""Entry-point group of commands other packages add to ``parley`` (``bench``)."""


def plugin_commands() -> dict[str, EntryPoint]:
    """Commands registered under :data:`COMMANDS_GROUP`, by name.

    Each entry point is a ``main(argv) -> int`` that parses its own options, so
    the package that provides it (``benchmarks``) is imported only when its
    command runs, and nothing here depends on it.
    """
    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``parley`` command."""
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline setting, e.g. --set stt.backend=pocketsphinx (repeatable)",
    )

    run = sub.add_parser("run", parents=[overrides], help="run a pipeline on a WAV file")
    run.add_argument("pipeline", help="pipeline file, or the name of a shipped one")
    run.add_argument("--input", help="WAV file the user speaks (any rate; file transport)")
    run.add_argument("--output", help="WAV file to write, on the input's timeline (file transport)")
    run.add_argument("--events", help="JSONL file of timestamped events")
    run.add_argument("--stereo", action="store_true", help="user left, bot right in the output")
    run.set_defaults(func=_run_or_talk)

    serve = sub.add_parser(
        "serve", parents=[overrides], help="serve a cascade as an OpenAI-Realtime WebSocket API"
    )
    serve.add_argument("pipeline", nargs="?", default="cascade-local", help="cascade pipeline")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' from clients (visible in ps: prefer "
        "--token-file or $PARLEY_SERVE_TOKEN)",
    )
    serve.add_argument("--token-file", help="read the required bearer token from this file")
    serve.add_argument(
        "--max-sessions",
        type=int,
        metavar="N",
        help="sessions served at once; more are refused with HTTP 503 (default 8)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, refuse new sessions and give running ones this long to end, then "
        "close them (error event, close code 1012) and exit 0 (default 20)",
    )
    serve.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="server option, e.g. --option max_duration_s=3600 (repeatable)",
    )
    serve.set_defaults(func=_cmd_serve)

    talk = sub.add_parser(
        "talk", parents=[overrides], help="serve a pipeline live: one conversation per connection"
    )
    talk.add_argument("pipeline", help="pipeline file, or the name of a shipped one")
    talk.add_argument(
        "--transport",
        help="live transport: websocket, twilio, telnyx, webrtc (default: the file's)",
    )
    talk.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    talk.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    talk.set_defaults(func=_cmd_talk)

    check = sub.add_parser("check", parents=[overrides], help="validate a pipeline file")
    check.add_argument("pipeline")
    check.set_defaults(func=_cmd_check)

    lister = sub.add_parser("backends", help="list the registered backends")
    lister.add_argument("stage", nargs="?", help="only this stage")
    lister.set_defaults(func=_cmd_backends)

    for name, entry in sorted(plugin_commands().items()):
        sub.add_parser(name, help=_summary(entry), add_help=False)
    return parser


def _summary(entry: EntryPoint) -> str:
    """The first line of the docstring of a registered command's module."""
    try:
        module = sys.modules.get(entry.module) or __import__(entry.module, fromlist=["_"])
    except ImportError as exc:  # listed in the help all the same, with why it cannot run
        return f"(cannot be imported: {exc})"
    first = (module.__doc__ or "").strip().splitlines()
    return first[0] if first else f"parley {entry.name} --help"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parley`` console script."""
    from pipelines.stopping import Stopped, stop_on_signals

    arguments = list(sys.argv[1:] if argv is None else argv)
    # parley run stops cleanly on SIGINT or SIGTERM from here on, loading included
    with stop_on_signals() if arguments[:1] == ["run"] else nullcontext():
        try:
            return _main(arguments)
        except Stopped as exc:
            print(f"parley: stopped by {exc.signal.name}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            return 130


_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _main(arguments: list[str]) -> int:
    from pipelines.config import ConfigError
    from pipelines.registry import BackendError

    verbose = bool(arguments) and arguments[0] in ("-v", "--verbose")
    rest = arguments[1:] if verbose else arguments
    command = plugin_commands().get(rest[0]) if rest else None
    if command is not None:  # a registered command parses its own options
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format=_LOG_FORMAT)
        try:
            result: int = command.load()(rest[1:])
        except (ConfigError, BackendError) as exc:
            print(f"parley {command.name}: {exc}", file=sys.stderr)
            return 2
        return result
    args = build_parser().parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=_LOG_FORMAT,
    )
    try:
        result = args.func(args)
    except (ConfigError, BackendError) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())

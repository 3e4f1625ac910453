"""Soak benchmark of ``parley serve``: does its memory come back after sessions end?

``python -m benchmarks.soak`` starts one ``parley serve`` process on 127.0.0.1
and runs cycles against it. In each cycle ``--sessions`` Realtime-protocol
clients (raw ``websockets`` connections) connect and wait for
``session.created``; each then speaks one turn (a question synthesised by Piper,
appended as 24 kHz PCM16 under server VAD) and waits for ``response.done``, at
most ``--speakers`` at a time; once every client has its answer they all close.
When the server reports no session left, its resident memory is read: the idle
RSS after the cycle.

The check: the idle RSS after the last cycle is within ``--tolerance`` (10 %) of
the idle RSS after the first one. The exit status is 0 when it holds, 1 when it
does not, 2 when the run itself failed (a session got no answer, the server died).
"""

from benchmarks.soak.cli import main

__all__ = ["main"]

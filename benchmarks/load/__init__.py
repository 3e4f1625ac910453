"""Load benchmark of ``parley serve``: memory of idle sessions, and how many can talk at once.

``python -m benchmarks.load`` starts one ``parley serve`` process on 127.0.0.1
(or targets a running one with ``--url ws://127.0.0.1:PORT/v1/realtime``) and
measures, after one warm-up turn:

1. **Idle memory**: the server's RSS (alone, and with its child processes) with
   1, 5 and 20 idle sessions open: connected, configured by ``session.update``,
   sent no audio. The headline is the ratio of the last to the first.
2. **Spoken ramp**: for each level N (1..6 by default), N Realtime-protocol
   clients (:class:`~benchmarks.load.talker.Talker`) speak the built-in corpus's
   turns at real-time pace, their first turns spread over ``--spread`` seconds.
   Each turn's voice-to-voice time runs from the sending of the end of its
   speech to the first reply audio received. The report gives p50/p90 per N and
   the largest N whose p50 stays within ``--target`` (1 s) with every turn
   answered.

Everything is bounded (:data:`~benchmarks.load.cli.LIMITS`, ``--max-minutes``),
runs on the loopback only, and Ctrl-C stops the server child and exits 130.
"""

from benchmarks.load.cli import main

__all__ = ["main"]

"""Engine overhead benchmark: what the framework itself costs, with no AI in the loop.

Run ``python -m benchmarks.overhead`` (``--quick`` for a short run); see
:func:`benchmarks.overhead.cli.main` for the options. Scenarios:

a. latency per frame and per hop through N passthrough stages (``latency``);
b. maximum throughput through 10 stages (``throughput``);
c. an interruption through a busy queued stage with a backlog (``interruption``);
d. K concurrent real-time sessions: CPU, latency, memory, keeping up (``concurrency``);
e. memory of an idle started pipeline and the import time of ``framework`` (``memory``).
"""

from benchmarks.overhead.cli import main

__all__ = ["main"]

"""What a load balancer asks a ``parley serve`` worker: is it alive, will it take a session.

* ``GET /health`` (liveness) answers 200 while the process serves, draining
  included: ``{"status": "ok", "sessions": N, "max_sessions": M}``. A probe that
  fails here means "restart the worker".
* ``GET /ready`` (readiness) answers 200 when one more session would be accepted,
  else 503, both with the load:
  ``{"ready": bool, "sessions": N, "max_sessions": M, "draining": bool}``.
  A balancer that checks it stops sending new connections to a worker that is
  full or draining, and leaves its running sessions alone.

:class:`WorkerLoad` counts the sessions and holds the draining flag; the
server's HTTP hook (:func:`pipelines.serve.app.serve`) answers from it.
"""

from __future__ import annotations

import json
from http import HTTPStatus

__all__ = ["WorkerLoad"]


class WorkerLoad:
    """The sessions a worker serves at once, against its ``max_sessions``, and its drain."""

    def __init__(self, limit: int) -> None:
        """Allow ``limit`` sessions at once."""
        self.limit = limit
        self.active = 0
        self.draining = False

    @property
    def full(self) -> bool:
        """True when one more session would pass the limit."""
        return self.active >= self.limit

    @property
    def accepting(self) -> bool:
        """True when a new session would be served (not full, not draining)."""
        return not (self.full or self.draining)

    def health(self) -> str:
        """The ``/health`` body: liveness and load, as JSON."""
        return json.dumps({"status": "ok", "sessions": self.active, "max_sessions": self.limit})

    def readiness(self) -> tuple[HTTPStatus, str]:
        """The ``/ready`` answer: 200 when accepting, else 503; the load as JSON."""
        body = json.dumps(
            {
                "ready": self.accepting,
                "sessions": self.active,
                "max_sessions": self.limit,
                "draining": self.draining,
            }
        )
        return (HTTPStatus.OK if self.accepting else HTTPStatus.SERVICE_UNAVAILABLE), body

    def refusal(self) -> str:
        """Why a new connection is refused (draining, or at the limit)."""
        if self.draining:
            return "This server is shutting down and takes no new sessions; connect again."
        return (
            f"This server is serving its limit of {self.limit} sessions; "
            "try again when one has ended."
        )

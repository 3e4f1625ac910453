"""Credentials never reach a log: every log record of the process is redacted as it is made.

With ``parley -v serve`` the ``websockets`` loggers write each handshake's
headers at DEBUG, ``Authorization: Bearer <token>`` and the browser
subprotocol ``openai-insecure-api-key.<token>`` among them, for right and wrong
tokens alike. A filter on one logger would miss records of its children and of
other libraries, so :func:`redacting` installs a log record factory instead:
every record, from any logger at any level, has its message (and its traceback
text) rewritten before any handler or filter sees it.

Rewritten are the server's own tokens wherever they appear, and anything shaped
like a credential: the value of an ``Authorization`` header, a bearer token, the
key in ``openai-insecure-api-key.<key>``, an ``api_key=`` or ``token=`` query
parameter, and OpenAI-style ``sk-...`` keys. Each becomes ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["REDACTED", "redact", "redacting"]

REDACTED = "[redacted]"

# A value, unless it is already masked (``***``, ``[redacted]``).
_VALUE = r"(?!\*+(?:[\s,;'\"&]|$)|\[redacted\])[^\s,;'\"&]+"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?i)(\bauthorization\b['\"]?\s*[:=,]\s*['\"]?)(?>(\w+\s+)?){_VALUE}"), r"\1\2"),
    (re.compile(rf"(?i)(\bbearer\s+){_VALUE}"), r"\1"),
    (re.compile(rf"(?i)(openai-insecure-api-key\.){_VALUE}"), r"\1"),
    (re.compile(rf"(?i)([?&](?:api[_-]?key|token|access_token)=){_VALUE}"), r"\1"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), ""),
)

_MIN_SECRET = 4  # shorter tokens are only redacted where they are shaped like one
_secrets: dict[str, int] = {}  # token -> number of servers using it
_lock = threading.Lock()
_users = 0
_previous: Callable[..., logging.LogRecord] | None = None
_formatter = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with the known tokens and anything shaped like a credential replaced."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern, keep in _PATTERNS:
        text = pattern.sub(keep + REDACTED, text)
    return text


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., Any]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format: leave it for logging to report
            return record
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    factory.parley_redacting = True  # type: ignore[attr-defined]
    return factory


@contextmanager
def redacting(secrets: Iterable[str | None] = ()) -> Iterator[None]:
    """Redact every log record of the process (and ``secrets`` anywhere in it) while inside.

    Nested and concurrent uses (several servers in one process) share one factory;
    when the last one ends, the factory that was there before is put back (unless
    another was installed meanwhile) and their secrets are forgotten.
    """
    global _users, _previous
    mine = [s for s in secrets if s]
    with _lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "parley_redacting", False):
            _previous = current
            logging.setLogRecordFactory(_redacting_factory(current))
        _users += 1
        for secret in mine:
            _secrets[secret] = _secrets.get(secret, 0) + 1
    try:
        yield
    finally:
        with _lock:
            for secret in mine:
                _secrets[secret] -= 1
                if not _secrets[secret]:
                    del _secrets[secret]
            _users -= 1
            current = logging.getLogRecordFactory()
            if not _users and _previous is not None and getattr(current, "parley_redacting", False):
                logging.setLogRecordFactory(_previous)
                _previous = None

"""Structured JSON logging for both daemons.

One JSON object per line on stderr, so journald and any log shipper can index fields
(``collector``, ``device``, ``node_id`` ...) without regexes. Extra context is passed the
standard way, ``log.warning("...", extra={"device": "/dev/sda"})``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line with UTC time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every logger to one JSON handler on ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class LogOnce:
    """Log a recurring condition once per key until it clears.

    A dead sensor or a missing disk would otherwise fill the journal every cycle; the
    rule is "log it once with context", and log again when it recovers.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def problem(self, key: str, level: int, msg: str, **context: Any) -> None:
        """Log ``msg`` the first time ``key`` goes bad; stay quiet while it stays bad."""
        with self._lock:
            if key in self._active:
                return
            self._active.add(key)
        self._logger.log(level, msg, extra=context)

    def recovered(self, key: str, msg: str, **context: Any) -> None:
        """Log ``msg`` once when a previously reported ``key`` is fine again."""
        with self._lock:
            if key not in self._active:
                return
            self._active.discard(key)
        self._logger.info(msg, extra=context)

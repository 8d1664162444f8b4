"""One JSON line per request: route, upstream, instance, status, latency, request id,
limiter decision, attempts and the error if any.

Lines go to the ``workbook.gateway.access`` logger (INFO) and to a bounded in-memory
record (``maxlen`` most recent) that a notebook or a test reads with ``lines()`` (the JSON
lines) or ``records()`` (the dicts). A line is encoded when something reads it: at once
when the logger would emit INFO, else only when ``lines()`` is called (structured loggers
defer formatting the same way), so a gateway whose access logger is off pays no encoding.
A written entry must not be changed afterwards (the gateway never does).
"""

from __future__ import annotations

import json
import logging
from collections import deque

LOGGER = logging.getLogger("workbook.gateway.access")
FIELDS = ("request_id", "method", "path", "route", "upstream", "instance", "status", "latency_ms", "limiter",
          "attempts", "bytes_in", "bytes_out", "error")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every line: ``json.dumps`` with ``separators`` builds a new encoder per call."""


def encode_entry(entry: dict) -> str:
    """The JSON line of an entry: ``FIELDS`` in order, missing ones null."""
    if tuple(entry) != FIELDS:
        entry = {k: entry.get(k) for k in FIELDS}
    return _ENCODE(entry)


class AccessLog:
    def __init__(self, *, maxlen: int = 10_000, logger: logging.Logger = LOGGER):
        self._entries: deque[dict] = deque(maxlen=maxlen)
        self.logger = logger

    def write(self, entry: dict) -> None:
        self._entries.append(entry)
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(encode_entry(entry))

    def lines(self) -> list[str]:
        """The recorded entries as JSON lines, oldest first."""
        return [encode_entry(e) for e in self._entries]

    def records(self) -> list[dict]:
        """The recorded entries as dicts (``FIELDS`` in order), oldest first, as a reader of
        the JSON lines would get them."""
        return [json.loads(line) for line in self.lines()]

"""One JSON line per request: route, upstream, instance, status, latency, request id,
limiter decision, attempts and the error if any.

Lines go to the ``workbook.gateway.access`` logger (INFO) and to ``lines``, a bounded
in-memory list a notebook or a test reads (``maxlen`` most recent).
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


class AccessLog:
    def __init__(self, *, maxlen: int = 10_000, logger: logging.Logger = LOGGER):
        self.lines: deque[str] = deque(maxlen=maxlen)
        self.logger = logger

    def write(self, entry: dict) -> str:
        line = _ENCODE({k: entry.get(k) for k in FIELDS})
        self.lines.append(line)
        self.logger.info(line)
        return line

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

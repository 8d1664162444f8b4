"""Logs you can search: JSON lines carrying the trace, stored in SQLite with full-text search.

In place of the source article's structlog-to-Elasticsearch pipeline, the standard
library and an embedded store:

* ``JsonFormatter(service=..., clock=...)`` turns a ``logging.LogRecord`` into one JSON
  object per line: ``ts`` (the injected clock's seconds + ``epoch``, never the wall clock
  unless no clock is given), ``level``, ``service``, ``logger``, ``message``, ``trace_id``
  and ``span_id`` of the span current when the record was made (W3C hex; ``null``
  outside a span), and any ``extra={...}`` fields under their own names.
  ``TraceContextFilter`` stamps the ids on the record at emission time (a filter, so a
  record handed to a queue later still has the ids of the code that logged it).
* ``LogStore(path)`` (``":memory:"`` by default) keeps the records in a table and
  indexes ``message`` and the extra fields in an FTS5 virtual table (external content,
  rowid = the record's id). ``query(trace_id=, service=, level=, since=, until=, text=)``
  combines the filters with AND; ``level`` is a minimum (``"WARNING"`` returns warnings,
  errors and criticals); ``since``/``until`` bound ``ts`` (``since <= ts < until``);
  ``text`` is an FTS5 query (words, ``"phrases"``, ``OR``, ``NOT``, ``prefix*``).
  Without FTS5 in the running SQLite (``LogStore.fts5`` is False) ``text`` falls back to
  ``LIKE`` on the message, word by word, and operators are not supported.
* ``search("service:orders level:warning trace_id:4bf9... since:60 until:120 timeout")``:
  the same filters as one string (what a search box would take): ``field:value`` terms
  and free text (bare words and ``"quoted phrases"``, all required).
* **Bad queries get a ``LogQueryError`` naming what was wrong**: an unknown field, a
  level that is not one of DEBUG/INFO/WARNING/ERROR/CRITICAL, a trace id that is not 32
  hex digits, a time that is not a number, ``since`` after ``until``, an unclosed quote,
  or FTS5 syntax SQLite rejects (its message is quoted).

``LogStoreHandler(store, formatter)`` is the ``logging.Handler`` that writes into a store;
``service_logger(service, store, clock=...)`` builds a logger outside the global
``logging`` registry (nothing leaks between experiments or into the root logger).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3

from workbook.core.clock import Clock
from workbook.observability.errors import ObservabilityError
from workbook.observability.tracing import current_ids

__all__ = ["LEVELS", "LogQueryError", "JsonFormatter", "TraceContextFilter", "LogStore", "LogStoreHandler",
           "service_logger", "parse_log_query", "fts5_available"]

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_TRACE_RE = re.compile(r"[0-9a-f]{32}")
_SPAN_RE = re.compile(r"[0-9a-f]{16}")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "trace_id",
                                                                         "span_id", "service"}
QUERY_FIELDS = ("trace_id", "span_id", "service", "level", "since", "until")


class LogQueryError(ObservabilityError):
    """A log query that cannot be run; the message names the field or the syntax at fault."""


def fts5_available() -> bool:
    """Whether the running SQLite has the FTS5 extension."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False


class TraceContextFilter(logging.Filter):
    """Stamps ``trace_id`` and ``span_id`` of the current span on each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = current_ids()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module doc); keys sorted, so a record's line is reproducible."""

    def __init__(self, *, service: str | None = None, clock: Clock | None = None, epoch: float = 0.0):
        super().__init__()
        self.service, self.clock, self.epoch = service, clock, epoch

    def entry(self, record: logging.LogRecord) -> dict:
        trace_id, span_id = (record.trace_id, record.span_id) if hasattr(record, "trace_id") else current_ids()
        entry = {"ts": round(self.epoch + self.clock.now(), 6) if self.clock is not None else record.created,
                 "level": record.levelname, "service": getattr(record, "service", None) or self.service,
                 "logger": record.name, "message": record.getMessage(), "trace_id": trace_id, "span_id": span_id}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return entry

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.entry(record), sort_keys=True, separators=(",", ":"))


def _check_level(level) -> int:
    if isinstance(level, str) and level.upper() in LEVELS:
        return LEVELS[level.upper()]
    raise LogQueryError(f"level: expected one of {', '.join(LEVELS)} (any case), got {level!r}")


def _check_time(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise LogQueryError(f"{name}: expected a time in seconds (a number), got {value!r}")
    return float(value)


class LogStore:
    """JSON log records in SQLite, searchable by field and by text (module doc)."""

    def __init__(self, path: str = ":memory:", *, use_fts5: bool | None = None):
        self.fts5 = fts5_available() if use_fts5 is None else bool(use_fts5)
        self.db = sqlite3.connect(path, check_same_thread=False)  # a notebook's run_virtual runs in a worker thread
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level TEXT NOT NULL,
                levelno INTEGER NOT NULL, service TEXT, logger TEXT, trace_id TEXT, span_id TEXT,
                message TEXT NOT NULL, fields TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id);
            CREATE INDEX IF NOT EXISTS logs_service_ts ON logs (service, ts);
            CREATE INDEX IF NOT EXISTS logs_ts ON logs (ts);""")
        if self.fts5:
            self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(message, fields, "
                            "content='logs', content_rowid='id')")

    def add(self, entry: dict | str) -> int:
        """Store one record (a JSON line or its dict); returns its id."""
        if isinstance(entry, str):
            try:
                entry = json.loads(entry)
            except json.JSONDecodeError as exc:
                raise LogQueryError(f"log line is not JSON: {exc}") from None
        if not isinstance(entry, dict) or "message" not in entry or "level" not in entry:
            raise LogQueryError(f"log entry: expected an object with 'message' and 'level', got {entry!r}")
        levelno = _check_level(entry["level"])
        ts = _check_time("ts", entry.get("ts", 0.0))
        core = {"ts", "level", "service", "logger", "trace_id", "span_id", "message"}
        fields = {k: v for k, v in entry.items() if k not in core}
        fields_text = json.dumps(fields, sort_keys=True)
        with self.db:
            cur = self.db.execute(
                "INSERT INTO logs (ts, level, levelno, service, logger, trace_id, span_id, message, fields) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ts, entry["level"].upper(), levelno, entry.get("service"), entry.get("logger"),
                 entry.get("trace_id"), entry.get("span_id"), str(entry["message"]), fields_text))
            if self.fts5:
                self.db.execute("INSERT INTO logs_fts (rowid, message, fields) VALUES (?, ?, ?)",
                                (cur.lastrowid, str(entry["message"]), fields_text))
        return cur.lastrowid

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM logs").fetchone()[0]

    def query(self, *, trace_id: str | None = None, span_id: str | None = None, service: str | None = None,
              level: str | None = None, since: float | None = None, until: float | None = None,
              text: str | None = None, limit: int = 1000) -> list[dict]:
        """Records matching every filter given, oldest first (module doc)."""
        where, args = [], []
        if trace_id is not None:
            if not isinstance(trace_id, str) or not _TRACE_RE.fullmatch(trace_id):
                raise LogQueryError(f"trace_id: expected 32 lower-case hex digits (W3C trace id), got {trace_id!r}")
            where.append("trace_id = ?")
            args.append(trace_id)
        if span_id is not None:
            if not isinstance(span_id, str) or not _SPAN_RE.fullmatch(span_id):
                raise LogQueryError(f"span_id: expected 16 lower-case hex digits (W3C span id), got {span_id!r}")
            where.append("span_id = ?")
            args.append(span_id)
        if service is not None:
            if not isinstance(service, str) or not service:
                raise LogQueryError(f"service: expected a non-empty string, got {service!r}")
            where.append("service = ?")
            args.append(service)
        if level is not None:
            where.append("levelno >= ?")
            args.append(_check_level(level))
        lo = _check_time("since", since) if since is not None else None
        hi = _check_time("until", until) if until is not None else None
        if lo is not None and hi is not None and lo > hi:
            raise LogQueryError(f"time range: since ({lo}) is after until ({hi})")
        if lo is not None:
            where.append("ts >= ?")
            args.append(lo)
        if hi is not None:
            where.append("ts < ?")
            args.append(hi)
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise LogQueryError(f"text: expected a non-empty search text, got {text!r}")
            if self.fts5:
                where.append("id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?)")
                args.append(text)
            else:
                for word in text.split():
                    where.append("message LIKE ? ESCAPE '\\'")
                    args.append("%" + re.sub(r"([%_\\])", r"\\\1", word.strip('"')) + "%")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise LogQueryError(f"limit: expected a positive integer, got {limit!r}")
        sql = ("SELECT id, ts, level, service, logger, trace_id, span_id, message, fields FROM logs"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts, id LIMIT ?")
        try:
            rows = self.db.execute(sql, (*args, limit)).fetchall()
        except sqlite3.OperationalError as exc:
            raise LogQueryError(f"text: search syntax {text!r} rejected by SQLite FTS5: {exc}") from None
        return [{"id": r[0], "ts": r[1], "level": r[2], "service": r[3], "logger": r[4], "trace_id": r[5],
                 "span_id": r[6], "message": r[7], **json.loads(r[8])} for r in rows]

    def search(self, query: str, *, limit: int = 1000) -> list[dict]:
        """``query`` as one string of ``field:value`` terms and free text (module doc)."""
        return self.query(**parse_log_query(query, fts5=self.fts5), limit=limit)

    def close(self) -> None:
        self.db.close()

    def __repr__(self):
        return f"LogStore({len(self)} records, {'FTS5' if self.fts5 else 'LIKE fallback'})"


def _tokens(query: str):
    """``("field", name, value, position)`` and ``("text", words, None, position)`` tokens of a search string."""
    pos, n = 0, len(query)
    while pos < n:
        if query[pos].isspace():
            pos += 1
            continue
        start = pos
        field = _FIELD_RE.match(query, pos)
        if field:
            pos = field.end()
        if pos < n and query[pos] == '"':
            close = query.find('"', pos + 1)
            if close < 0:
                raise LogQueryError(f"query {query!r}: unclosed quote at char {pos} (close the quoted phrase)")
            value, pos = query[pos + 1:close], close + 1
        else:
            word = re.compile(r"\S*").match(query, pos)
            value, pos = word.group(), word.end()
        if field:
            yield "field", field.group(1).lower(), value, start
        else:
            yield "text", value, None, start


_FIELD_RE = re.compile(r"([A-Za-z_]+):")


def parse_log_query(query: str, *, fts5: bool = True) -> dict:
    """The keyword arguments of ``LogStore.query`` for a search string; ``LogQueryError`` if it is malformed."""
    if not isinstance(query, str):
        raise LogQueryError(f"query: expected a string, got {type(query).__name__}")
    filters: dict = {}
    words: list[str] = []
    for kind, name, value, at in _tokens(query):
        if kind == "text":
            if name:
                words.append(name)
            continue
        if name not in QUERY_FIELDS:
            raise LogQueryError(f"query {query!r}: unknown field {name!r} at char {at}; fields are "
                                f"{', '.join(QUERY_FIELDS)} (quote a term to search it as text)")
        if not value:
            raise LogQueryError(f"query {query!r}: field {name!r} at char {at} has no value")
        if name in filters:
            raise LogQueryError(f"query {query!r}: field {name!r} given twice")
        if name in ("since", "until"):
            try:
                filters[name] = float(value)
            except ValueError:
                raise LogQueryError(f"{name}: expected a time in seconds (a number), got {value!r}") from None
        elif name == "level":
            _check_level(value)
            filters[name] = value.upper()
        else:
            filters[name] = value
    if words:
        # each word or phrase as an FTS5 string: every one required, whatever characters it holds
        filters["text"] = " ".join('"' + w.replace('"', '""') + '"' for w in words) if fts5 else " ".join(words)
    return filters


class LogStoreHandler(logging.Handler):
    """Writes each record, formatted by a ``JsonFormatter``, into a ``LogStore``."""

    def __init__(self, store: LogStore, formatter: JsonFormatter | None = None, level=logging.NOTSET):
        super().__init__(level)
        self.store = store
        self.setFormatter(formatter or JsonFormatter())
        self.addFilter(TraceContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.store.add(self.format(record))
        except Exception:  # noqa: BLE001 -- logging must never break the code that logs
            self.handleError(record)


def service_logger(service: str, store: LogStore, *, clock: Clock | None = None, epoch: float = 0.0,
                   level=logging.DEBUG) -> logging.Logger:
    """A logger named ``service`` writing JSON records into ``store``, outside ``logging``'s registry."""
    logger = logging.Logger(service, level)
    logger.addHandler(LogStoreHandler(store, JsonFormatter(service=service, clock=clock, epoch=epoch)))
    logger.propagate = False
    return logger

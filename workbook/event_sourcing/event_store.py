"""An event store: streams of events appended with optimistic concurrency, plus snapshots.

Each stream (one aggregate: ``order-17``) is an ordered list of events; the first event
has version 1 and a stream's **version** is the version of its last event (0 when empty).
Every event also gets a global ``position`` (1, 2, ...) across all streams, for
projections that read everything in order (``read_all``).

Invariants:

* ``append(stream, events, expected_version=v)`` succeeds only if the stream is at
  version ``v`` at that moment, and then writes all of ``events`` atomically with
  versions ``v+1 ... v+n``. Two writers that both read version ``v`` cannot both
  succeed: the second gets ``ConcurrencyConflict`` naming the stream, the version it
  expected and the version it found. An expected version *above* the stream's version
  is a bug in the caller (it claims to have read events that do not exist) and raises
  ``ExpectedVersionFromFuture``. ``expected_version=None`` (``ANY``) skips the check.
* Versions in a stream are gapless and never rewritten; positions only grow.
* A snapshot is ``(stream, version, state)``: the state after folding events 1..version.
  ``load`` starts from the latest snapshot and folds only the later events, so it gives
  the same state as folding every event from the start.

``InMemoryEventStore`` and ``SQLiteEventStore`` behave identically (one test suite runs
against both); the SQLite one also guards against writers in other connections or
processes with a ``UNIQUE(stream, version)`` constraint inside a ``BEGIN IMMEDIATE``
transaction. The API is synchronous: appends are short, local and atomic.
"""

from __future__ import annotations

import abc
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.errors import WorkbookError
from workbook.messaging.message import find_unserialisable

ANY = None
NO_STREAM = 0


class WrongExpectedVersion(WorkbookError, ValueError):
    """An append whose expected version does not match the stream's version."""

    def __init__(self, stream: str, expected: int, actual: int, detail: str):
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(f"stream {stream!r}: expected version {expected}, but the stream is at version "
                         f"{actual}: {detail}")


class ConcurrencyConflict(WrongExpectedVersion):
    """Someone else appended since the caller read the stream: reload, decide again, retry."""


class ExpectedVersionFromFuture(WrongExpectedVersion):
    """The caller claims a version the stream never reached: a bug, not a race."""


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedEvent:
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    position: int
    recorded_at: float


@dataclass(frozen=True)
class Snapshot:
    stream: str
    version: int
    state: Any


def _check_stream(stream) -> str:
    if not isinstance(stream, str) or not stream.strip():
        raise ValueError(f"event store: stream name must be a non-empty string, got {stream!r}")
    return stream


def _check_event(stream: str, i: int, event) -> NewEvent:
    if isinstance(event, tuple) and len(event) in (2, 3):
        event = NewEvent(*event)
    if not isinstance(event, NewEvent):
        raise TypeError(f"stream {stream!r}: events[{i}] must be a NewEvent or (type, data) tuple, got {event!r}")
    if not isinstance(event.type, str) or not event.type:
        raise ValueError(f"stream {stream!r}: events[{i}].type must be a non-empty string, got {event.type!r}")
    for part in ("data", "metadata"):
        value = getattr(event, part)
        if not isinstance(value, dict):
            raise TypeError(f"stream {stream!r}: events[{i}].{part} must be a dict, got {type(value).__name__}")
        path, detail = find_unserialisable(value, f"events[{i}].{part}")
        if path:
            raise TypeError(f"stream {stream!r}: {path} is not JSON-serialisable: {detail}")
    return event


def _check_expected(stream: str, expected, actual: int) -> None:
    if expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"stream {stream!r}: expected_version must be None (any) or an int >= 0, got {expected!r}")
    if expected > actual:
        raise ExpectedVersionFromFuture(stream, expected, actual,
                                        "the caller claims to have seen events that were never written")
    if expected < actual:
        raise ConcurrencyConflict(stream, expected, actual,
                                  f"{actual - expected} event(s) were appended since; reload and retry")


class EventStore(abc.ABC):
    clock: Clock

    @abc.abstractmethod
    def append(self, stream: str, events: Iterable[NewEvent | tuple], expected_version: int | None = ANY) -> int:
        """Append atomically; return the stream's new version."""

    @abc.abstractmethod
    def version(self, stream: str) -> int: ...

    @abc.abstractmethod
    def read(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        """Events of ``stream`` with version >= ``from_version``, in order."""

    @abc.abstractmethod
    def read_all(self, from_position: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...

    @abc.abstractmethod
    def streams(self) -> list[str]: ...

    @abc.abstractmethod
    def _store_snapshot(self, snap: Snapshot) -> None: ...

    @abc.abstractmethod
    def load_snapshot(self, stream: str) -> Snapshot | None: ...

    def save_snapshot(self, stream: str, version: int, state: Any) -> Snapshot:
        _check_stream(stream)
        actual = self.version(stream)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= actual:
            raise ValueError(f"stream {stream!r}: snapshot version must be an int in [1, {actual}] "
                             f"(the stream's version), got {version!r}")
        path, detail = find_unserialisable(state, "state")
        if path:
            raise TypeError(f"stream {stream!r}: snapshot {path} is not JSON-serialisable: {detail}")
        snap = Snapshot(stream, version, json.loads(json.dumps(state)))
        self._store_snapshot(snap)
        return snap

    def load(self, stream: str, fold: Callable[[Any, RecordedEvent], Any], initial: Any = None) -> tuple[Any, int]:
        """(state, version): the latest snapshot, then ``fold`` over the events after it."""
        snap = self.load_snapshot(stream)
        state, version = (initial, 0) if snap is None else (snap.state, snap.version)
        for ev in self.read(stream, version + 1):
            state, version = fold(state, ev), ev.version
        return state, version

    @staticmethod
    def _check_read(stream: str, from_version: int, limit) -> None:
        _check_stream(stream)
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise ValueError(f"stream {stream!r}: from_version must be an int >= 1, got {from_version!r}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"stream {stream!r}: limit must be None or an int >= 0, got {limit!r}")


class InMemoryEventStore(EventStore):
    """Events and snapshots kept as JSON text, like the SQLite store: every read decodes fresh
    objects, so what a caller does to an event or a loaded state never changes the store."""

    def __init__(self, *, clock: Clock | None = None):
        self.clock = clock or LoopClock()
        self._streams: dict[str, list[tuple]] = {}
        self._all: list[tuple] = []
        self._snapshots: dict[str, tuple[int, str]] = {}

    @staticmethod
    def _event(row: tuple) -> RecordedEvent:
        stream, version, type_, data, metadata, position, at = row
        return RecordedEvent(stream, version, type_, json.loads(data), json.loads(metadata), position, at)

    def append(self, stream, events, expected_version=ANY):
        _check_stream(stream)
        events = [_check_event(stream, i, e) for i, e in enumerate(events)]
        log = self._streams.get(stream, [])
        _check_expected(stream, expected_version, len(log))
        now = self.clock.now()
        new = [(stream, len(log) + i + 1, e.type, json.dumps(e.data), json.dumps(e.metadata), len(self._all) + i + 1,
                now) for i, e in enumerate(events)]
        if new:
            self._streams[stream] = log + new
            self._all.extend(new)
        return len(log) + len(new)

    def version(self, stream):
        return len(self._streams.get(_check_stream(stream), []))

    def read(self, stream, from_version=1, limit=None):
        self._check_read(stream, from_version, limit)
        out = self._streams.get(stream, [])[from_version - 1:]
        return [self._event(r) for r in (out if limit is None else out[:limit])]

    def read_all(self, from_position=1, limit=None):
        out = self._all[max(0, from_position - 1):]
        return [self._event(r) for r in (out if limit is None else out[:limit])]

    def streams(self):
        return sorted(self._streams)

    def _store_snapshot(self, snap):
        old = self._snapshots.get(snap.stream)
        if old is None or snap.version >= old[0]:  # an older snapshot never replaces a newer one
            self._snapshots[snap.stream] = (snap.version, json.dumps(snap.state))

    def load_snapshot(self, stream):
        got = self._snapshots.get(_check_stream(stream))
        return None if got is None else Snapshot(stream, got[0], json.loads(got[1]))


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream  TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state   TEXT NOT NULL
);
"""


class SQLiteEventStore(EventStore):
    """Events in a SQLite file (or ``:memory:``); several stores may open the same file."""

    def __init__(self, path: str = ":memory:", *, clock: Clock | None = None):
        self.clock = clock or LoopClock()
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)

    def append(self, stream, events, expected_version=ANY):
        _check_stream(stream)
        events = [_check_event(stream, i, e) for i, e in enumerate(events)]
        now = self.clock.now()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            actual = self._version(stream)
            _check_expected(stream, expected_version, actual)
            c.executemany("INSERT INTO events(stream, version, type, data, metadata, recorded_at) VALUES (?,?,?,?,?,?)",
                          [(stream, actual + i + 1, e.type, json.dumps(e.data), json.dumps(e.metadata), now)
                           for i, e in enumerate(events)])
        except sqlite3.IntegrityError:
            c.execute("ROLLBACK")
            raise ConcurrencyConflict(stream, expected_version, self._version(stream),
                                      "another writer appended the same version concurrently") from None
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return actual + len(events)

    def _version(self, stream):
        row = self.conn.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,)).fetchone()
        return row[0]

    def version(self, stream):
        return self._version(_check_stream(stream))

    @staticmethod
    def _row(r) -> RecordedEvent:
        position, stream, version, type_, data, metadata, at = r
        return RecordedEvent(stream, version, type_, json.loads(data), json.loads(metadata), position, at)

    def read(self, stream, from_version=1, limit=None):
        self._check_read(stream, from_version, limit)
        rows = self.conn.execute("SELECT position, stream, version, type, data, metadata, recorded_at FROM events "
                                 "WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?",
                                 (stream, from_version, -1 if limit is None else limit)).fetchall()
        return [self._row(r) for r in rows]

    def read_all(self, from_position=1, limit=None):
        rows = self.conn.execute("SELECT position, stream, version, type, data, metadata, recorded_at FROM events "
                                 "WHERE position >= ? ORDER BY position LIMIT ?",
                                 (from_position, -1 if limit is None else limit)).fetchall()
        return [self._row(r) for r in rows]

    def streams(self):
        return [r[0] for r in self.conn.execute("SELECT DISTINCT stream FROM events ORDER BY stream")]

    def _store_snapshot(self, snap):
        self.conn.execute("INSERT INTO snapshots(stream, version, state) VALUES (?,?,?) ON CONFLICT(stream) DO "
                          "UPDATE SET version = excluded.version, state = excluded.state WHERE excluded.version >= "
                          "snapshots.version", (snap.stream, snap.version, json.dumps(snap.state)))

    def load_snapshot(self, stream):
        row = self.conn.execute("SELECT version, state FROM snapshots WHERE stream = ?",
                                (_check_stream(stream),)).fetchone()
        return None if row is None else Snapshot(stream, row[0], json.loads(row[1]))

    def close(self) -> None:
        self.conn.close()

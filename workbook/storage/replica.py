"""Replicas fed by change data capture: in order, idempotently, with measured lag.

A ``Replica`` is a read-only copy in its own SQLite file. It stores the ``seq`` of the
last change it applied **in the same transaction** as the change itself, so:

* applying a change twice (a redelivery, a consumer that crashed after applying but
  before acknowledging) is recognised and does nothing (``apply`` returns False);
* a change that skips ahead raises ``ReplicationGap``: a replica never silently misses one;
* after a crash it resumes from its stored ``applied_seq``.

With a ``mapping`` the same mechanism keeps *another service's* copy: ``mapping(change)``
returns ``(record_id, data)`` to store, or ``None`` to ignore the change (its seq still
counts as applied, so order and idempotence hold). A delete deletes the copy.

``Replicator`` follows a ``ChangeFeed`` in virtual time: every ``poll_interval`` it reads
the new changes, waits a shipping ``delay`` (a distribution) and applies them in order.
A change that fails to apply is retried after ``retry_delay`` and recorded in
``failures``; it is never skipped (the replica waits, and its lag shows it).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Callable
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.distributions import make_distribution
from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.core.tasks import stop_task
from workbook.storage.cdc import Change, ChangeFeed
from workbook.storage.errors import ReplicationGap
from workbook.storage.repository import SCHEMA, Record, _matches

Mapping = Callable[[Change], "tuple[str, dict[str, Any]] | None"]

REPLICA_SCHEMA = SCHEMA + "CREATE TABLE IF NOT EXISTS replica_state (one INTEGER PRIMARY KEY CHECK (one = 1), " \
                          "applied_seq INTEGER NOT NULL);"


class Replica:
    """A read-only copy of a repository (or of part of it, through ``mapping``)."""

    def __init__(self, path: str = ":memory:", *, name: str = "replica", mapping: Mapping | None = None,
                 clock: Clock | None = None):
        if not isinstance(name, str) or not name:
            raise ParameterError("name", name, "a non-empty string")
        if mapping is not None and not callable(mapping):
            raise TypeError(f"Replica {name!r}: mapping must be callable or None, got {mapping!r}")
        self.path, self.name, self.mapping = path, name, mapping
        self.clock = clock or LoopClock()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.conn.executescript(REPLICA_SCHEMA)
        self.conn.execute("INSERT OR IGNORE INTO replica_state(one, applied_seq) VALUES (1, 0)")
        self.lags: list[float] = []   # apply time - commit time, per applied change
        self.duplicates = 0

    @property
    def applied_seq(self) -> int:
        return self.conn.execute("SELECT applied_seq FROM replica_state").fetchone()[0]

    def apply(self, change: Change) -> bool:
        """Apply one change; False if it was applied before. Raises ``ReplicationGap`` if one is missing."""
        if not isinstance(change, Change):
            raise TypeError(f"replica {self.name!r}: change must be a Change, got {type(change).__name__}")
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            applied = c.execute("SELECT applied_seq FROM replica_state").fetchone()[0]
            if change.seq <= applied:
                c.execute("ROLLBACK")
                self.duplicates += 1
                return False
            if change.seq != applied + 1:
                raise ReplicationGap(self.name, applied, change.seq)
            target = (change.record_id, change.data) if self.mapping is None or change.op == "delete" \
                else self.mapping(change)
            if change.op == "delete":
                c.execute("DELETE FROM records WHERE id = ?", (change.record_id,))
            elif target is not None:
                record_id, data = target
                c.execute("INSERT INTO records(id, version, data) VALUES (?,?,?) ON CONFLICT(id) DO UPDATE SET "
                          "version = excluded.version, data = excluded.data",
                          (record_id, change.version, json.dumps(data, sort_keys=True)))
            c.execute("UPDATE replica_state SET applied_seq = ?", (change.seq,))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        self.lags.append(self.clock.now() - change.at)
        return True

    def get(self, record_id: str) -> Record | None:
        row = self.conn.execute("SELECT id, version, data FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else Record(row[0], row[1], json.loads(row[2]))

    def list(self, where: dict[str, Any] | None = None) -> list[Record]:
        rows = self.conn.execute("SELECT id, version, data FROM records ORDER BY id").fetchall()
        return [r for r in (Record(i, v, json.loads(d)) for i, v, d in rows) if _matches(r.data, where)]

    def close(self) -> None:
        self.conn.close()


class Replicator:
    """Follows ``feed`` into ``replica`` in (virtual) time: poll, ship with a delay, apply in order."""

    def __init__(self, feed: ChangeFeed, replica: Replica, *, delay: Any = 0.0, poll_interval: float = 0.05,
                 retry_delay: float = 0.5, rng: random.Random | None = None, clock: Clock | None = None,
                 batch: int = 100):
        if not isinstance(feed, ChangeFeed):
            raise TypeError(f"Replicator: feed must be a ChangeFeed, got {type(feed).__name__}")
        if not isinstance(replica, Replica):
            raise TypeError(f"Replicator: replica must be a Replica, got {type(replica).__name__}")
        self.feed, self.replica = feed, replica
        self.delay = make_distribution(delay, name="delay")
        self.poll_interval = check_number("poll_interval", poll_interval, minimum=0, min_exclusive=True)
        self.retry_delay = check_number("retry_delay", retry_delay, minimum=0, min_exclusive=True)
        self.rng = rng or random.Random(0)
        self.clock = clock or LoopClock()
        self.batch = batch
        self.failures: list[tuple[int, str]] = []   # (seq, error) of every failed attempt
        self._task: asyncio.Task | None = None

    async def step(self) -> int:
        """Ship and apply the changes committed so far; the number applied."""
        changes = self.feed.read(self.replica.applied_seq, self.batch)
        if not changes:
            return 0
        wait = self.delay.sample(self.rng)
        if wait:
            await self.clock.sleep(wait)
        done = 0
        for ch in changes:
            try:
                done += self.replica.apply(ch)
            except Exception as exc:   # reported and retried, never skipped
                self.failures.append((ch.seq, f"{type(exc).__name__}: {exc}"))
                await self.clock.sleep(self.retry_delay)
                break
        return done

    async def run(self, until: float | None = None) -> None:
        """Follow the feed until virtual time ``until`` (forever when None)."""
        while until is None or self.clock.now() < until:
            if not await self.step():
                await self.clock.sleep(self.poll_interval)

    def start(self) -> asyncio.Task:
        self._task = asyncio.ensure_future(self.run())
        return self._task

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

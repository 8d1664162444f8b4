"""The transactional outbox: publish exactly the events whose business change committed.

The naive producer does a *dual write*: commit the order to its database, then publish
``OrderPlaced`` to the broker. A crash between the two leaves an order nobody hears about
(or, publishing first, an event about an order that was rolled back). The outbox writes
the event into an ``outbox`` table **in the same transaction** as the business change;
a separate relay reads unpublished rows in order, publishes them, and marks them sent.

Invariants:

* An event is in the outbox if and only if its business transaction committed.
* The relay publishes every outbox row at least once, in insertion order; a crash after
  publishing but before marking the row sent republishes it *with the same message id*,
  which an idempotent consumer recognises. Outbox + idempotent consumer = effectively once
  from the producer's database to the consumer's.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from workbook.messaging.broker import Broker
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.message import check_kind, check_topic, encode_payload

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    headers      TEXT NOT NULL,
    published    INTEGER NOT NULL DEFAULT 0
)
"""

META_SCHEMA = "CREATE TABLE IF NOT EXISTS outbox_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


class Outbox:
    """``add(conn, ...)`` inside the caller's transaction queues a message for the relay.

    Message ids are ``<prefix>-<seq>``. Consumers deduplicate by id alone, so the prefix must
    be unique per outbox database: by default it is a random one, drawn when the table is
    created and stored with it (``outbox_meta``), so it survives restarts of the producer.
    """

    def __init__(self, conn: sqlite3.Connection, *, prefix: str | None = None):
        self.conn = conn
        conn.execute(SCHEMA)
        conn.execute(META_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO outbox_meta(name, value) VALUES ('prefix', ?)",
                     (prefix or f"out-{uuid.uuid4().hex[:12]}",))
        stored = conn.execute("SELECT value FROM outbox_meta WHERE name = 'prefix'").fetchone()[0]
        if prefix is not None and prefix != stored:
            raise ValueError(f"Outbox(prefix={prefix!r}): this database's outbox already uses prefix {stored!r}; "
                             "changing it could reuse message ids that consumers have already seen")
        self.prefix = stored

    def add(self, conn: sqlite3.Connection, topic: str, payload: Any, *, key: str | None = None,
            kind: str = "event", headers: dict[str, str] | None = None) -> str:
        if not conn.in_transaction:
            raise RuntimeError("Outbox.add must run inside the business transaction "
                               "(use `with Transaction(conn) as conn:`), or the outbox guarantees nothing")
        check_topic(topic, where="outbox")
        check_kind(kind)
        text = encode_payload(topic, payload)
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox").fetchone()[0]
        message_id = f"{self.prefix}-{seq:07d}"
        conn.execute("INSERT INTO outbox(seq, message_id, topic, key, kind, payload, headers) VALUES (?,?,?,?,?,?,?)",
                     (seq, message_id, topic, key, kind, text, json.dumps(headers or {})))
        return message_id

    def unpublished(self, limit: int = 100) -> list[tuple]:
        return self.conn.execute("SELECT seq, message_id, topic, key, kind, payload, headers FROM outbox "
                                 "WHERE published = 0 ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def mark_published(self, seq: int) -> None:
        self.conn.execute("UPDATE outbox SET published = 1 WHERE seq = ?", (seq,))


class OutboxRelay:
    """Moves outbox rows to the broker; ``fault("published")`` may crash it before marking."""

    def __init__(self, outbox: Outbox, broker: Broker, *, fault: Callable[[str], None] | None = None):
        self.outbox, self.broker = outbox, broker
        self.fault = fault or (lambda stage: None)
        self.sent = 0

    async def relay_once(self, limit: int = 100) -> int:
        """Publish up to ``limit`` pending rows in order; return how many were marked sent."""
        n = 0
        for seq, message_id, topic, key, kind, payload, headers in self.outbox.unpublished(limit):
            await self.broker.publish(topic, json.loads(payload), key=key, kind=kind,
                                      headers=json.loads(headers), message_id=message_id)
            self.sent += 1
            self.fault("published")  # a crash here republishes the row (same id) after restart
            self.outbox.mark_published(seq)
            n += 1
        return n

    async def drain(self) -> int:
        total = 0
        while True:
            try:
                n = await self.relay_once()
            except ConsumerCrash:
                continue  # the relay restarts and carries on from the outbox table
            if n == 0:
                return total
            total += n

"""The idempotent consumer: deduplication stored *with* the consumer's own state.

A broker that redelivers (at-least-once) will sometimes hand over a message whose effect
was already applied: the consumer crashed after committing its work but before the ack.
The fix is not in the broker: the consumer records the ids of the messages it has
applied **in the same database transaction as the effect**. Either both the effect and
the "seen" row are committed, or neither is; a redelivered message finds its id and is
acknowledged without being applied again. Effectively-once = at-least-once delivery +
this check.

Invariant: for every message id, the effect is applied at most once, and if the
transaction committed, the id is recorded (SQLite's atomic commit guarantees both).
Keeping the seen-ids in a separate store (a Python set, another database, Redis) breaks
it: a crash between the two writes leaves them disagreeing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from workbook.messaging.message import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_messages (
    handler    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (handler, message_id)
)
"""

Apply = Callable[[sqlite3.Connection, Message], None]


def connect(path: str = ":memory:") -> sqlite3.Connection:
    """A SQLite connection in autocommit mode; transactions are opened explicitly."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
    return conn


class Transaction:
    """``with Transaction(conn):`` runs BEGIN ... COMMIT, or ROLLBACK if the block raises."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


class IdempotentHandler:
    """Apply each message at most once: ``handle(message, inside=...)`` returns True if applied.

    ``apply(conn, message)`` writes the effect with ``conn`` inside the transaction.
    ``inside`` (optional) runs inside the transaction after the effect, before the
    commit: experiments use it to inject a crash there.
    """

    def __init__(self, conn: sqlite3.Connection, apply: Apply, *, name: str = "handler"):
        self.conn, self.apply, self.name = conn, apply, name
        conn.execute(SCHEMA)
        self.applied = 0
        self.duplicates = 0

    def seen(self, message_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM processed_messages WHERE handler=? AND message_id=?",
                                (self.name, message_id)).fetchone()
        return row is not None

    def handle(self, message: Message, inside: Callable[[], None] | None = None) -> bool:
        with Transaction(self.conn) as conn:
            cur = conn.execute("INSERT OR IGNORE INTO processed_messages(handler, message_id) VALUES (?, ?)",
                               (self.name, message.id))
            if cur.rowcount == 0:
                self.duplicates += 1
                return False
            self.apply(conn, message)
            if inside is not None:
                inside()
        self.applied += 1
        return True


class PlainHandler:
    """The same effect without deduplication (for at-most-once and at-least-once)."""

    def __init__(self, conn: sqlite3.Connection, apply: Apply, *, name: str = "handler"):
        self.conn, self.apply, self.name = conn, apply, name
        self.applied = 0
        self.duplicates = 0

    def handle(self, message: Message, inside: Callable[[], None] | None = None) -> bool:
        with Transaction(self.conn) as conn:
            self.apply(conn, message)
            if inside is not None:
                inside()
        self.applied += 1
        return True

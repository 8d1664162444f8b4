"""Projections: read models in their own SQLite file, following the event store from a checkpoint.

A projection folds the store's events, in global position order, into tables shaped for
queries (CQRS: the write side is the event store, the read side is this file). It stores
the position of the last event it applied (its **checkpoint**) so a restarted projection
continues where it stopped.

The one rule that makes it exact: **apply the events and move the checkpoint in the same
SQLite transaction** (a batch of up to ``batch`` events per transaction). Then a crash
anywhere between the two loses both, and the events are applied again, once, on restart.
With ``checkpoint="separate"`` (the naive way) the event is committed first and the
checkpoint after it; a crash in between applies the event a second time on restart: a
counter counts it twice. ``crash_after`` injects that crash (after applying the event at
a given position, before its checkpoint is written).

``rebuild()`` drops the read model and replays from position 1: a projection can always
be thrown away and recomputed (after a bug fix, or a new shape). Events pass through the
upcaster first, so old event shapes project like new ones.

``OrderSummaryProjection`` is the chapter's read model: per customer the number of
orders placed, the amount paid and the orders cancelled; per order its status and total.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from workbook.core.errors import ParameterError, WorkbookError
from workbook.core.params import check_choice, check_int
from workbook.event_sourcing.event_store import EventStore, RecordedEvent
from workbook.event_sourcing.upcasting import Upcaster, order_upcaster

CHECKPOINT_MODES = ("atomic", "separate")


class ProjectionCrash(WorkbookError, RuntimeError):
    """Injected: the projection process dies right after applying the event at ``position``."""

    def __init__(self, position: int):
        self.position = position
        super().__init__(f"projection crashed after applying the event at position {position}, "
                         "before saving its checkpoint")


class Projection:
    """A read model: its tables (``schema``, ``tables``) and how one event changes them (``apply``)."""

    name = "projection"
    schema = ""
    tables: tuple[str, ...] = ()

    def apply(self, conn: sqlite3.Connection, event: RecordedEvent) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class OrderSummaryProjection(Projection):
    name = "order_summary"
    tables = ("customers", "orders")
    schema = """
    CREATE TABLE IF NOT EXISTS customers (customer_id TEXT PRIMARY KEY, orders INTEGER NOT NULL DEFAULT 0,
                                          paid_cents INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL,
                                       total_cents INTEGER NOT NULL);
    """

    def apply(self, conn, event):
        order_id = event.stream.removeprefix("order-")
        d = event.data
        if event.type == "OrderPlaced":
            total = sum(i["qty"] * i["unit_price_cents"] for i in d["items"])
            conn.execute("INSERT OR REPLACE INTO orders VALUES (?, ?, 'placed', ?)",
                         (order_id, d["customer_id"], total))
            conn.execute("INSERT INTO customers(customer_id, orders) VALUES (?, 1) ON CONFLICT(customer_id) "
                         "DO UPDATE SET orders = orders + 1", (d["customer_id"],))
        elif event.type == "ItemAdded":
            conn.execute("UPDATE orders SET total_cents = total_cents + ? WHERE order_id = ?",
                         (d["qty"] * d["unit_price_cents"], order_id))
        elif event.type == "OrderPaid":
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = ?", (order_id,))
            conn.execute("UPDATE customers SET paid_cents = paid_cents + ? WHERE customer_id = "
                         "(SELECT customer_id FROM orders WHERE order_id = ?)", (d["amount_cents"], order_id))
        elif event.type == "OrderShipped":
            conn.execute("UPDATE orders SET status = 'shipped' WHERE order_id = ?", (order_id,))
        elif event.type == "OrderCancelled":
            conn.execute("UPDATE orders SET status = 'cancelled' WHERE order_id = ?", (order_id,))
            conn.execute("UPDATE customers SET cancelled = cancelled + 1 WHERE customer_id = "
                         "(SELECT customer_id FROM orders WHERE order_id = ?)", (order_id,))

    @staticmethod
    def customers(conn) -> dict[str, tuple[int, int, int]]:
        rows = conn.execute("SELECT customer_id, orders, paid_cents, cancelled FROM customers ORDER BY 1").fetchall()
        return {c: (o, p, x) for c, o, p, x in rows}

    @staticmethod
    def orders(conn) -> dict[str, tuple[str, str, int]]:
        rows = conn.execute("SELECT order_id, customer_id, status, total_cents FROM orders ORDER BY 1").fetchall()
        return {o: (c, s, t) for o, c, s, t in rows}


class ProjectionRunner:
    """Keeps ``projection`` up to date with ``store`` in the SQLite file at ``path``."""

    def __init__(self, projection: Projection, store: EventStore, path: str = ":memory:", *,
                 upcaster: Upcaster | None = None, checkpoint: str = "atomic", batch: int = 500,
                 crash_after: Iterable[int] = ()):
        if not isinstance(projection, Projection):
            raise ParameterError("projection", projection, "a Projection")
        if not isinstance(store, EventStore):
            raise ParameterError("store", store, "an EventStore")
        self.projection, self.store, self.path = projection, store, path
        self.upcaster = upcaster or order_upcaster()
        self.mode = check_choice("checkpoint", checkpoint, CHECKPOINT_MODES)
        self.batch = check_int("batch", batch, minimum=1)
        self.crash_after = set(crash_after)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        self.conn.executescript(projection.schema)
        self.applied = 0   # events applied by this runner (a repeated one counts again)

    @property
    def position(self) -> int:
        row = self.conn.execute("SELECT position FROM checkpoints WHERE name = ?", (self.projection.name,)).fetchone()
        return 0 if row is None else row[0]

    def _save_checkpoint(self, position: int) -> None:
        self.conn.execute("INSERT INTO checkpoints(name, position) VALUES (?, ?) ON CONFLICT(name) "
                          "DO UPDATE SET position = excluded.position", (self.projection.name, position))

    def catch_up(self) -> int:
        """Apply every event after the checkpoint; the number applied. May raise ``ProjectionCrash``."""
        done = 0
        while True:
            events = self.step()
            if not events:
                return done
            done += len(events)

    def step(self) -> list[RecordedEvent]:
        """Apply at most one batch (``batch`` events) after the checkpoint; the events applied.

        For a caller that paces the projection itself (a poller in virtual time that
        measures the lag). May raise ``ProjectionCrash``.
        """
        events = self.store.read_all(self.position + 1, self.batch)
        if events:
            if self.mode == "atomic":
                self._apply_batch(events)
            else:
                for ev in events:
                    self._apply_separately(ev)
        return events

    def _apply_batch(self, events: list[RecordedEvent]) -> None:
        """A batch of events and the checkpoint after the last one: one transaction, all or nothing."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for ev in events:
                self.projection.apply(c, self.upcaster.upcast(ev))
                self._crash_point(ev.position)     # inside the transaction: a crash loses the effects too
            self._save_checkpoint(events[-1].position)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        self.applied += len(events)

    def _apply_separately(self, event: RecordedEvent) -> None:
        """The naive way: the effect is committed on its own, the checkpoint in a second transaction."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            self.projection.apply(c, self.upcaster.upcast(event))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        self.applied += 1
        self._crash_point(event.position)          # between the two commits: the effect stays, the checkpoint not
        self._save_checkpoint(event.position)

    def _crash_point(self, position: int) -> None:
        if position in self.crash_after:
            self.crash_after.discard(position)
            raise ProjectionCrash(position)

    def lag(self) -> int:
        """Events in the store not yet applied."""
        last = self.store.read_all(self.position + 1)
        return len(last)

    def rebuild(self) -> int:
        """Drop the read model and replay everything from position 1."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        for table in self.projection.tables:
            c.execute(f'DROP TABLE IF EXISTS "{table}"')
        c.execute("DELETE FROM checkpoints WHERE name = ?", (self.projection.name,))
        c.execute("COMMIT")
        c.executescript(self.projection.schema)
        return self.catch_up()

    def close(self) -> None:
        self.conn.close()

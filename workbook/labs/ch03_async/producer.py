"""The producer side: dual write against the transactional outbox."""

from __future__ import annotations

from dataclasses import dataclass

from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.labs.ch03_async.delivery import EXPERIMENT_CONFIG
from workbook.messaging.errors import ConsumerCrash
from workbook.messaging.idempotent import IdempotentHandler, Transaction, connect
from workbook.messaging.memory import InMemoryBroker
from workbook.messaging.outbox import Outbox, OutboxRelay


@dataclass
class OutboxResult:
    orders: int
    crash_rate: float
    dual_write_lost: int
    outbox_lost: int
    outbox_republished: int
    consumer_duplicates_skipped: int
    emails_sent: int


def outbox_experiment(orders: int = 200, *, crash_rate: float = 0.05, seed: int = 0) -> OutboxResult:
    """Orders committed, then ``OrderPlaced`` published; the producer crashes between the two.

    Dual write: a crash after the commit loses the event (the order exists, nobody hears of
    it). Outbox: the event row commits with the order; the relay may crash after publishing
    and before marking the row, so it republishes (same id) and the idempotent consumer
    skips the copy. Counted: events lost each way, republished copies, emails sent.
    """
    check_int("orders", orders, minimum=1)
    check_number("crash_rate", crash_rate, minimum=0, maximum=1)
    check_int("seed", seed, minimum=0)

    async def main():
        producer_rng, relay_rng = stream(seed, "producer-crashes"), stream(seed, "relay-crashes")
        broker = InMemoryBroker(EXPERIMENT_CONFIG)
        for t in ("orders-naive", "orders"):
            await broker.create_topic(t, 2)
        # dual write
        db = connect()
        db.execute("CREATE TABLE orders (id TEXT)")
        for i in range(orders):
            with Transaction(db) as tx:
                tx.execute("INSERT INTO orders VALUES (?)", (f"o{i}",))
            if producer_rng.random() < crash_rate:
                continue  # crashed after the commit, before the publish: the event is gone
            await broker.publish("orders-naive", {"order": f"o{i}"}, key=f"o{i}")
        naive_events = {m.payload["order"] for p in range(2) for m in await broker.read("orders-naive", p)}
        # outbox
        db2 = connect()
        db2.execute("CREATE TABLE orders (id TEXT)")
        outbox = Outbox(db2)

        def fault(stage):
            if relay_rng.random() < crash_rate:
                raise ConsumerCrash("relay crashed after publishing, before marking the row")

        relay = OutboxRelay(outbox, broker, fault=fault)
        for i in range(orders):
            with Transaction(db2) as tx:
                tx.execute("INSERT INTO orders VALUES (?)", (f"o{i}",))
                outbox.add(tx, "orders", {"order": f"o{i}"}, key=f"o{i}")
        await relay.drain()
        published = [m for p in range(2) for m in await broker.read("orders", p)]
        mail = connect()
        mail.execute("CREATE TABLE sent (order_id TEXT)")
        h = IdempotentHandler(mail, lambda c, m: c.execute("INSERT INTO sent VALUES (?)", (m.payload["order"],)),
                              name="mailer")
        for m in published:
            h.handle(m)
        sent = {r[0] for r in mail.execute("SELECT order_id FROM sent")}
        return OutboxResult(orders, crash_rate, orders - len(naive_events), orders - len(sent),
                            len(published) - len({m.id for m in published}), h.duplicates,
                            mail.execute("SELECT COUNT(*) FROM sent").fetchone()[0])

    return run_virtual(main())
